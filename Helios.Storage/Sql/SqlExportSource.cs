using System.Globalization;
using System.Text;
using Helios.Storage.Indexing;
using Helios.Storage.Snapshots;

namespace Helios.Storage.Sql;

/// <summary>
/// The export reads shared by SQLite and PostgreSQL, over the store's tables: snapshot capture, types and key ranges
/// at a snapshot, patient sets, and the copy hot path (stored UTF-8 JSON straight into NDJSON parts). The dialects
/// supply only <see cref="CopyRowsAsync"/>.
/// </summary>
public abstract class SqlExportSource(SqlResourceStore store) : IExportSource
{
    public Task<StoreSnapshot> CaptureSnapshotAsync(CancellationToken cancellationToken) => store.CaptureSnapshotAsync(cancellationToken);

    /// <summary>The rows <see cref="CopySnapshotAsync"/> would copy, as stored resources (tests).</summary>
    internal IAsyncEnumerable<StoredResource> ReadSnapshotAsync(SnapshotRange range, CancellationToken cancellationToken)
    {
        var query = BuildSnapshotQuery(range, SearchSqlBuilder.Columns);
        return StreamAsync(query.Sql, query.Parameters, cancellationToken);
    }

    public async Task<SnapshotCopy> CopySnapshotAsync(SnapshotRange range, ISnapshotSink sink, long maxBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        var query = BuildSnapshotQuery(range, range.Deleted ? $"r.seq, {DeletionBundle}" : "r.seq, r.json");
        var buffer = new NdjsonBuffer(sink);
        var (rows, lastSeq, stoppedEarly) = await CopyRowsAsync(query.Sql, query.Parameters, buffer, maxBytes, cancellationToken);
        await buffer.FlushAsync(cancellationToken);
        return new SnapshotCopy(rows - buffer.Rejected, buffer.Total, rows == 0 ? range.AfterSeq : lastSeq, !stoppedEarly && rows < range.Limit)
        {
            Problems = buffer.Problems,
        };
    }

    public async Task<SnapshotCopy> CopyPatientBlocksAsync(
        SnapshotRange patients, SnapshotRange? patientSelection, IReadOnlyList<SnapshotRange> members, ISnapshotSink sink, long maxBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(patients);
        ArgumentNullException.ThrowIfNull(members);
        ArgumentNullException.ThrowIfNull(sink);
        var list = BuildSnapshotQuery(patients with { Since = null, SinceExemptSetId = null, Filters = null }, "r.seq, r.res_id");
        var batch = new List<(long Seq, string Id)>();
        await using (var connection = await store.OpenAsync(cancellationToken))
        await using (var command = SqlResourceStore.CreateCommand(connection, list.Sql, list.Parameters))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                batch.Add((reader.GetInt64(0), reader.GetString(1)));
            }
        }

        var buffer = new NdjsonBuffer(sink);
        long rows = 0, lastSeq = patients.AfterSeq;
        var stoppedEarly = false;
        foreach (var (seq, id) in batch)
        {
            buffer.SetPendingLine(BlockHeader(id));
            var block = BuildBlockQuery(id, patientSelection, members);
            var (copied, _, _) = await CopyRowsAsync(block.Sql, block.Parameters, buffer, long.MaxValue, cancellationToken);
            buffer.SetPendingLine(null);
            rows += copied;
            lastSeq = seq;
            if (buffer.Total >= maxBytes)
            {
                stoppedEarly = true;
                break;
            }
        }

        await buffer.FlushAsync(cancellationToken);
        rows += buffer.PendingLinesWritten - buffer.Rejected;
        return new SnapshotCopy(rows, buffer.Total, lastSeq, !stoppedEarly && batch.Count < patients.Limit) { Problems = buffer.Problems };
    }

    /// <summary>The header line of a patient's block (ids are FHIR ids: nothing in them needs JSON escaping).</summary>
    private static byte[] BlockHeader(string patientId) => Encoding.UTF8.GetBytes(
        "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"header\",\"valueReference\":{\"reference\":\"Patient/" + patientId + "\"}}]}");

    /// <summary>One patient's block rows (seq, JSON): the Patient first, then its compartment's selected resources.</summary>
    private (string Sql, List<KeyValuePair<string, object>> Parameters) BuildBlockQuery(string patientId, SnapshotRange? patientSelection, IReadOnlyList<SnapshotRange> members)
    {
        var p = new SqlParameters();
        var patient = p.Add(patientId);
        var arms = new List<string>();
        if (patientSelection is not null)
        {
            var own = new StringBuilder("SELECT 0 AS k, r.seq, r.json FROM resources r WHERE ");
            AppendRangeConditions(own, patientSelection with { PatientSetId = null }, p);
            arms.Add(own.Append($" AND r.res_id = {patient}").ToString());
        }

        foreach (var member in members)
        {
            var arm = new StringBuilder("SELECT 1 AS k, r.seq, r.json FROM resources r WHERE ");
            AppendRangeConditions(arm, member with { PatientSetId = null }, p);
            arms.Add(arm.Append($" AND r.seq IN (SELECT c.seq FROM compartment c WHERE c.patient_id = {patient} AND c.res_type = {p.Add(member.Type)})").ToString());
        }

        return arms.Count == 0
            ? ("SELECT 0, '' WHERE 1 = 0", p.Values)
            : ($"SELECT u.seq, u.json FROM ({string.Join(" UNION ALL ", arms)}) u ORDER BY u.k, u.seq", p.Values);
    }

    /// <summary>The deleted-resources line of a tombstone, composed by the database (types and ids are FHIR ids:
    /// nothing in them needs JSON escaping).</summary>
    private const string DeletionBundle =
        "'{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"request\":{\"method\":\"DELETE\",\"url\":\"' || r.res_type || '/' || r.res_id || '\"}}]}'";

    /// <summary>
    /// A membership condition (<c>r.seq IN (subquery)</c>, or several OR-ed) as the dialect should see it. The export
    /// queries read a key range in key order and stop at a row limit; a planner that turns the subquery into a join
    /// loses that order and sorts the whole range for every batch (PostgreSQL did, spilling to disk: a Group export at
    /// 0.3x the full rate). PostgreSQL keeps a condition that is not a plain top-level sublink as a filter (a hashed
    /// subplan: the subquery's keys built once per query, probed per row in index order).
    /// </summary>
    protected virtual string KeepAsFilter(string condition) => "(" + condition + ")";

    /// <summary>The keys of the compartment rows of type <paramref name="type"/> in (<paramref name="after"/>,
    /// <paramref name="upTo"/>] of the patients of a set (all arguments are SQL parameter names): one probe of the
    /// (patient_id, res_type, seq) index per patient.</summary>
    protected virtual string MembersInRange(string set, string type, string after, string upTo) =>
        $"SELECT c.seq FROM patient_sets m JOIN compartment c ON c.patient_id = m.patient_id WHERE m.set_id = {set} AND c.res_type = {type} AND c.seq > {after} AND c.seq <= {upTo}";

    /// <summary>Runs the snapshot query (columns: seq, UTF-8 JSON) and appends each row to the buffer, stopping after
    /// the row that brings the buffer's total to <paramref name="maxBytes"/>. Returns (rows, last seq, stopped early).</summary>
    protected abstract Task<(long Rows, long LastSeq, bool StoppedEarly)> CopyRowsAsync(
        string sql, List<KeyValuePair<string, object>> parameters, NdjsonBuffer buffer, long maxBytes, CancellationToken cancellationToken);

    private (string Sql, List<KeyValuePair<string, object>> Parameters) BuildSnapshotQuery(SnapshotRange range, string columns)
    {
        ArgumentNullException.ThrowIfNull(range);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(range.Limit);
        var p = new SqlParameters();
        var sql = new StringBuilder($"SELECT {columns} FROM resources r WHERE ");
        AppendRangeConditions(sql, range, p);
        // res_type is fixed: ordering by it too names the (res_type, seq) index as the one that gives the order, so
        // the planner does not walk the primary key through every type's rows instead.
        sql.Append($" ORDER BY r.res_type, r.seq LIMIT {range.Limit.ToString(CultureInfo.InvariantCulture)}");
        return (sql.ToString(), p.Values);
    }

    /// <summary>The conditions on a version row <c>r</c> of what <paramref name="range"/> selects.</summary>
    private void AppendRangeConditions(StringBuilder sql, SnapshotRange range, SqlParameters p)
    {
        var snapshot = p.Add(range.SnapshotSeq);
        var after = p.Add(range.AfterSeq);
        var upTo = p.Add(Math.Min(range.UpToSeq, range.SnapshotSeq));
        sql.Append($"r.res_type = {p.Add(range.Type)}")
            .Append($" AND r.seq > {after} AND r.seq <= {upTo}")
            .Append($" AND (r.next_seq IS NULL OR r.next_seq > {snapshot}) AND r.deleted = {(range.Deleted ? 1 : 0)}");
        // A tombstone has no compartment rows: the version it replaced (whose next_seq is the tombstone) has them.
        var compartmentSeq = range.Deleted ? "(SELECT v.seq FROM resources v WHERE v.next_seq = r.seq)" : "r.seq";
        if (range.Since is { } since)
        {
            var changed = $"r.last_updated > {p.Add(FhirDateRange.ToMicros(since))}";
            sql.Append(range.SinceExemptSetId is { } exempt
                ? $" AND ({changed} OR {InPatientSet(range.Type, p.Add(exempt), compartmentSeq)})"
                : $" AND {changed}");
        }

        if (range.Filters is { Count: > 0 } filters)
        {
            // Each index lookup bounded by the key range too: its matches are read once per batch, not table-wide.
            var bounds = $" AND seq > {after} AND seq <= {upTo}";
            sql.Append(" AND ").Append(KeepAsFilter(string.Join(" OR ", filters.Select(f => SearchSqlBuilder.BuildCriteria(f, p, bounds)))));
        }

        if (range.PatientSetId is { } setId)
        {
            var set = p.Add(setId);
            // The members' compartment rows of this type in the key range, looked up patient by patient through the
            // (patient_id, res_type, seq) index: bounded by the range, so every batch reads only its own slice.
            sql.Append(range.Deleted || range.Type == "Patient"
                ? " AND " + InPatientSet(range.Type, set, compartmentSeq)
                : " AND " + KeepAsFilter($"r.seq IN ({MembersInRange(set, p.Add(range.Type), after, upTo)})"));
        }

        if (range.IdSetId is { } idSet)
        {
            sql.Append($" AND r.res_id IN (SELECT patient_id FROM patient_sets WHERE set_id = {p.Add(idSet)})");
        }
    }

    /// <summary>Row <c>r</c> is a patient of the set, or in the compartment (of version <paramref name="compartmentSeq"/>)
    /// of one.</summary>
    private static string InPatientSet(string type, string set, string compartmentSeq) => type == "Patient"
        ? $"r.res_id IN (SELECT patient_id FROM patient_sets WHERE set_id = {set})"
        : $"EXISTS (SELECT 1 FROM compartment c JOIN patient_sets m ON m.patient_id = c.patient_id AND m.set_id = {set} WHERE c.seq = {compartmentSeq})";

    /// <summary>A version row <c>alias</c> current (and not deleted) at the snapshot parameter.</summary>
    private static string CurrentAt(string alias, string snapshot) =>
        $"{alias}.seq <= {snapshot} AND ({alias}.next_seq IS NULL OR {alias}.next_seq > {snapshot}) AND {alias}.deleted = 0";

    public async Task<long> FillReferencedSetsAsync(string setPrefix, SnapshotRange exported, IReadOnlyCollection<string> targetTypes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(exported);
        ArgumentNullException.ThrowIfNull(targetTypes);
        if (targetTypes.Count == 0)
        {
            return 0;
        }

        var p = new SqlParameters();
        var sql = new StringBuilder($"INSERT INTO patient_sets (set_id, patient_id) SELECT DISTINCT {p.Add(setPrefix)} || x.target_type, x.target_id FROM resources r JOIN idx_reference x ON x.seq = r.seq WHERE ");
        AppendRangeConditions(sql, exported, p);
        sql.Append(" AND x.target_type IN (").AppendJoin(", ", targetTypes.Select(t => p.Add(t))).Append(") ON CONFLICT DO NOTHING");
        var added = await store.ExecuteAsync(sql.ToString(), p.Values, cancellationToken);
        await SetsChangedAsync(cancellationToken);
        return added;
    }

    public async Task<long> FillProvenanceSetAsync(string setId, SnapshotRange exported, bool latestOnly, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(exported);
        var target = SearchParameterRegistry.Instance.Find("Provenance", "target")
            ?? throw new InvalidOperationException("The search parameter Provenance.target is not registered.");
        var p = new SqlParameters();
        var set = p.Add(setId);
        var snapshot = p.Add(exported.SnapshotSeq);
        // The Provenance rows naming an exported resource as target, found through the reference index.
        var provenance = new StringBuilder(
            $"FROM resources r JOIN idx_reference x ON {SearchSqlBuilder.KeyCondition(target, "x.pid")} AND x.target_id = r.res_id AND x.target_type = r.res_type " +
            $"JOIN resources v ON v.seq = x.seq AND v.res_type = 'Provenance' AND {CurrentAt("v", snapshot)} WHERE ");
        AppendRangeConditions(provenance, exported, p);
        var sql = latestOnly
            ? $"INSERT INTO patient_sets (set_id, patient_id) SELECT DISTINCT {set}, l.res_id FROM resources l WHERE l.seq IN (SELECT MAX(v.seq) {provenance} GROUP BY r.res_id) ON CONFLICT DO NOTHING"
            : $"INSERT INTO patient_sets (set_id, patient_id) SELECT DISTINCT {set}, v.res_id {provenance} ON CONFLICT DO NOTHING";
        var added = await store.ExecuteAsync(sql, p.Values, cancellationToken);
        await SetsChangedAsync(cancellationToken);
        return added;
    }

    public async Task<IReadOnlyDictionary<string, long>> CountSetsAsync(string prefix, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(prefix);
        await using var connection = await store.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        // Names from prefix (inclusive) up to the prefix with its last character raised by one.
        command.CommandText = "SELECT set_id, COUNT(*) FROM patient_sets WHERE set_id >= @from AND set_id < @to GROUP BY set_id";
        SqlResourceStore.AddParameter(command, "@from", prefix);
        SqlResourceStore.AddParameter(command, "@to", prefix[..^1] + (char)(prefix[^1] + 1));
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            counts[reader.GetString(0)] = reader.GetInt64(1);
        }

        return counts;
    }

    public async Task<long> FillIdSetAsync(string setId, SnapshotRange exported, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(exported);
        var p = new SqlParameters();
        var sql = new StringBuilder($"INSERT INTO patient_sets (set_id, patient_id) SELECT {p.Add(setId)}, r.res_id FROM resources r WHERE ");
        AppendRangeConditions(sql, exported, p);
        sql.Append(" ON CONFLICT DO NOTHING");
        var added = await store.ExecuteAsync(sql.ToString(), p.Values, cancellationToken);
        await SetsChangedAsync(cancellationToken);
        return added;
    }

    private async IAsyncEnumerable<StoredResource> StreamAsync(
        string sql, List<KeyValuePair<string, object>> parameters, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var connection = await store.OpenAsync(cancellationToken);
        await using var command = SqlResourceStore.CreateCommand(connection, sql, parameters);

        await using var reader = await command.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess, cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            yield return new StoredResource(
                reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetInt32(3),
                FhirDateRange.FromMicros(reader.GetInt64(4)), reader.GetInt32(5) != 0, reader.GetString(6));
        }
    }

    public async Task<IReadOnlyList<KeyRange>> GetKeyRangesAsync(string type, long snapshotSeq, int rowsPerRange, CancellationToken cancellationToken, long afterSeq = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rowsPerRange);
        var ranges = new List<KeyRange>();
        await using var connection = await store.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        // Versions, not current versions: an index-only scan of (res_type, seq) that never reads the JSON pages. The
        // counts are upper bounds of what each range exports (superseded versions and tombstones are skipped then).
        command.CommandText = "SELECT seq FROM resources WHERE res_type = @t AND seq > @a AND seq <= @s ORDER BY seq";
        SqlResourceStore.AddParameter(command, "@t", type);
        SqlResourceStore.AddParameter(command, "@a", afterSeq);
        SqlResourceStore.AddParameter(command, "@s", snapshotSeq);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        long after = afterSeq, last = 0, rows = 0;
        while (await reader.ReadAsync(cancellationToken))
        {
            last = reader.GetInt64(0);
            if (++rows == rowsPerRange)
            {
                ranges.Add(new KeyRange(after, last, rows));
                after = last;
                rows = 0;
            }
        }

        if (rows > 0)
        {
            ranges.Add(new KeyRange(after, last, rows));
        }

        return ranges;
    }

    public async Task<bool> HasDeletionsAsync(string type, long afterSeq, long snapshotSeq, CancellationToken cancellationToken) =>
        await store.ScalarAsync(
            "SELECT COUNT(*) FROM (SELECT 1 FROM resources WHERE res_type = @t AND seq > @a AND seq <= @s AND deleted = 1 LIMIT 1) d",
            [new("@t", type), new("@a", afterSeq), new("@s", snapshotSeq)], cancellationToken) > 0;

    public async Task<long> GetSeqAtAsync(DateTimeOffset instant, CancellationToken cancellationToken) =>
        await store.ScalarAsync("SELECT COALESCE(MAX(seq), 0) FROM resources WHERE last_updated <= @t", [new("@t", FhirDateRange.ToMicros(instant))], cancellationToken);

    public async Task<IReadOnlyList<string>> GetTypesAsync(long snapshotSeq, CancellationToken cancellationToken)
    {
        await using var connection = await store.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        // A loose index scan of (res_type, seq): one index probe per type instead of reading every key (DISTINCT
        // scanned all of them: a tenth of a second per million resources, on every export's planning).
        command.CommandText = """
            WITH RECURSIVE t(res_type) AS (
                SELECT MIN(res_type) FROM resources
                UNION ALL
                SELECT (SELECT MIN(r.res_type) FROM resources r WHERE r.res_type > t.res_type) FROM t WHERE t.res_type IS NOT NULL)
            SELECT res_type FROM t
            WHERE res_type IS NOT NULL AND (SELECT MIN(r.seq) FROM resources r WHERE r.res_type = t.res_type) <= @s
            ORDER BY res_type
            """;
        SqlResourceStore.AddParameter(command, "@s", snapshotSeq);
        var types = new List<string>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            types.Add(reader.GetString(0));
        }

        return types;
    }

    public async Task<StoredResource?> ReadAtSnapshotAsync(string type, string id, long snapshotSeq, CancellationToken cancellationToken)
    {
        var rows = await store.QueryAsync(
            $"SELECT {SearchSqlBuilder.Columns} FROM resources r WHERE r.res_type = @t AND r.res_id = @i AND r.seq <= @s AND (r.next_seq IS NULL OR r.next_seq > @s)",
            [new("@t", type), new("@i", id), new("@s", snapshotSeq)], cancellationToken);
        return rows.Count > 0 ? rows[0] : null;
    }

    public async Task AddToPatientSetAsync(string setId, IReadOnlyCollection<string> patientIds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(patientIds);
        await using var connection = await store.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        foreach (var chunk in patientIds.Distinct(StringComparer.Ordinal).Chunk(400))
        {
            await using var command = connection.CreateCommand();
            command.Transaction = transaction;
            var values = new StringBuilder();
            SqlResourceStore.AddParameter(command, "@set", setId);
            for (var i = 0; i < chunk.Length; i++)
            {
                values.Append(i == 0 ? "" : ", ").Append(CultureInfo.InvariantCulture, $"(@set, @p{i})");
                SqlResourceStore.AddParameter(command, "@p" + i.ToString(CultureInfo.InvariantCulture), chunk[i]);
            }

            command.CommandText = $"INSERT INTO patient_sets (set_id, patient_id) VALUES {values} ON CONFLICT DO NOTHING";
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        await SetsChangedAsync(cancellationToken);
    }

    public async Task<long> FillPatientSetFromSnapshotAsync(string setId, long snapshotSeq, CancellationToken cancellationToken)
    {
        var added = await store.ExecuteAsync(
            "INSERT INTO patient_sets (set_id, patient_id) SELECT @set, res_id FROM resources WHERE res_type = 'Patient' AND seq <= @s AND (next_seq IS NULL OR next_seq > @s) AND deleted = 0 ON CONFLICT DO NOTHING",
            [new("@set", setId), new("@s", snapshotSeq)], cancellationToken);
        await SetsChangedAsync(cancellationToken);
        return added;
    }

    /// <summary>After a set was filled: lets the query planner know its new size (the partitions' joins with it are
    /// planned by it), where the dialect needs that.</summary>
    protected virtual Task SetsChangedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task DeletePatientSetAsync(string setId, CancellationToken cancellationToken) =>
        // The set and those named "setId:..." (';' sorts right after ':').
        await store.ExecuteAsync("DELETE FROM patient_sets WHERE set_id = @set OR (set_id > @from AND set_id < @to)",
            [new("@set", setId), new("@from", setId + ":"), new("@to", setId + ";")], cancellationToken);
}
