using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Helios.Storage.Diagnostics;
using Helios.Storage.Fhir;
using Helios.Storage.Indexing;
using Helios.Storage.Search;
using Hl7.Fhir.Model;
using Task = System.Threading.Tasks.Task;

namespace Helios.Storage.Sql;

/// <summary>
/// The store logic shared by SQLite and PostgreSQL. Writers are serialized by the <c>store_state</c> row (a row
/// lock in PostgreSQL, the single writer in SQLite), which hands out keys and timestamps, so keys commit in
/// order: everything at or below the highest committed key is a consistent snapshot.
/// </summary>
public abstract class SqlResourceStore(IndexExtractor extractor, TimeProvider timeProvider) : IResourceStore
{
    protected IndexExtractor Extractor => extractor;

    protected abstract ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken);

    /// <summary>Starts the write transaction and takes the writer lock (released at commit or rollback).</summary>
    protected abstract ValueTask<DbTransaction> BeginWriteAsync(DbConnection connection, CancellationToken cancellationToken);

    /// <summary>Reads the clock row: (last seq, last timestamp in µs), locking it for the transaction.</summary>
    protected abstract Task<(long LastSeq, long LastTs)> ReadClockAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken);

    protected abstract Task<Dictionary<(string Type, string Id), CurrentVersion>> LookupCurrentAsync(
        DbConnection connection, DbTransaction transaction, IReadOnlyCollection<(string Type, string Id)> keys, CancellationToken cancellationToken);

    protected abstract Task InsertRowsAsync(DbConnection connection, DbTransaction transaction, IReadOnlyList<NewVersion> rows, CancellationToken cancellationToken);

    protected abstract Task SupersedeAsync(DbConnection connection, DbTransaction transaction, IReadOnlyList<(long OldSeq, long NewSeq)> pairs, CancellationToken cancellationToken);

    /// <summary>Runs DDL statements in one transaction (PostgreSQL: under the migration advisory lock).</summary>
    protected abstract Task ExecuteDdlAsync(IReadOnlyList<string> statements, CancellationToken cancellationToken);

    protected abstract bool IsPostgres { get; }

    public Task DropSecondaryIndexesAsync(CancellationToken cancellationToken) =>
        ExecuteDdlAsync(Schema.SecondaryIndexes(IsPostgres).Select(i => $"DROP INDEX IF EXISTS {i.Name}").ToList(), cancellationToken);

    public virtual Task EnsureSecondaryIndexesAsync(CancellationToken cancellationToken) =>
        ExecuteDdlAsync([Schema.NaturalKeyIndex, .. Schema.SecondaryIndexes(IsPostgres).Select(i => $"CREATE INDEX IF NOT EXISTS {i.Name} ON {i.Definition}")], cancellationToken);

    public async Task<bool> TryDropNaturalKeyIndexAsync(CancellationToken cancellationToken)
    {
        // Under the writer lock, so that no write slips in between the check and the drop.
        await using var connection = await OpenAsync(cancellationToken);
        var transaction = await BeginWriteAsync(connection, cancellationToken);
        try
        {
            await ReadClockAsync(connection, transaction, cancellationToken); // takes the clock row lock (PostgreSQL)
            await using (var any = connection.CreateCommand())
            {
                any.Transaction = transaction;
                any.CommandText = "SELECT COUNT(*) FROM (SELECT 1 FROM resources LIMIT 1) x";
                if (Convert.ToInt64(await any.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture) > 0)
                {
                    return false;
                }
            }

            await using (var drop = connection.CreateCommand())
            {
                drop.Transaction = transaction;
                drop.CommandText = "DROP INDEX IF EXISTS ux_resources_version";
                await drop.ExecuteNonQueryAsync(cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
            return true;
        }
        finally
        {
            await transaction.DisposeAsync();
            EndWrite();
        }
    }

    /// <summary>Releases an in-process writer lock, if the dialect uses one.</summary>
    protected virtual void EndWrite()
    {
    }

    public async Task<IReadOnlyList<WriteOutcome>> WriteAsync(IReadOnlyList<ResourceWrite> writes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(writes);
        var prepared = writes.Select(w => w.Resource is null ? null : new PreparedResource(w.Resource, extractor.Extract(w.Resource))).ToList();
        return await WriteCoreAsync(writes, prepared, returnResources: true, loadKeys: null, cancellationToken);
    }

    public Task LoadBatchAsync(IReadOnlyList<PreparedResource> batch, CancellationToken cancellationToken) =>
        LoadBatchAsync(batch, null, cancellationToken);

    public async Task LoadBatchAsync(IReadOnlyList<PreparedResource> batch, LoadKeys? keys, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var writes = batch.Select(b => new ResourceWrite(WriteKind.Update, b.Type, b.Id, b.Resource)).ToList();
        // A load reports nothing per resource: no stored text is decoded back into a string (a 2-byte-per-char
        // copy of every resource, on the writer's thread).
        await WriteCoreAsync(writes, batch, returnResources: false, keys, cancellationToken);
    }

    private async Task<IReadOnlyList<WriteOutcome>> WriteCoreAsync(IReadOnlyList<ResourceWrite> writes, IReadOnlyList<PreparedResource?> prepared, bool returnResources, LoadKeys? loadKeys, CancellationToken cancellationToken)
    {
        if (writes.Count == 0)
        {
            return [];
        }

        using var activity = StorageTelemetry.ActivitySource.StartActivity("helios.storage.write");
        activity?.SetTag("helios.storage.backend", IsPostgres ? "postgresql" : "sqlite");
        activity?.SetTag("helios.storage.writes", writes.Count);
        var started = Stopwatch.GetTimestamp();
        await using var connection = await OpenAsync(cancellationToken);
        var transaction = await BeginWriteAsync(connection, cancellationToken);
        try
        {
            var (lastSeq, lastTs) = await ReadClockAsync(connection, transaction, cancellationToken);
            var keys = writes.Select(w => (w.Type, w.Id)).Distinct().ToList();
            var current = loadKeys is null
                ? await LookupCurrentAsync(connection, transaction, keys, cancellationToken)
                : (await loadKeys.LookupAsync(keys, seq => ReadKeyOfSeqAsync(connection, transaction, seq, cancellationToken)))
                    .ToDictionary(e => e.Key, e => new CurrentVersion(e.Value.Seq, e.Value.Number, e.Value.Deleted));
            var ts = Math.Max(FhirDateRange.ToMicros(timeProvider.GetUtcNow()), lastTs + 1);

            var rows = new List<NewVersion>(writes.Count);
            var inBatch = new Dictionary<long, NewVersion>();
            var superseded = new List<(long, long)>();
            var outcomes = new WriteOutcome[writes.Count];
            for (var i = 0; i < writes.Count; i++)
            {
                var write = writes[i];
                var key = (write.Type, write.Id);
                current.TryGetValue(key, out var existing);
                var exists = existing is { Deleted: false };
                if (write.IfMatchVersion is { } expected && (existing is null || existing.Version != expected || existing.Deleted))
                {
                    var actual = existing is null ? "it does not exist" : existing.Deleted ? "it is deleted" : $"the current version is {existing.Version}";
                    throw new ResourceConflictException($"{write.Type}/{write.Id}: If-Match asked for version {expected} but {actual}.", i, isVersionMismatch: true);
                }

                if (write.Kind == WriteKind.Create && exists)
                {
                    throw new ResourceConflictException($"{write.Type}/{write.Id} already exists.", i, isVersionMismatch: false);
                }

                if (write.Kind == WriteKind.Delete && !exists)
                {
                    outcomes[i] = new WriteOutcome(WriteStatus.NothingToDelete, null);
                    continue;
                }

                var seq = ++lastSeq;
                var version = (existing?.Version ?? 0) + 1;
                var row = new NewVersion(seq, write.Type, write.Id, version, ts++, write.Kind == WriteKind.Delete ? null : prepared[i]);
                rows.Add(row);
                inBatch[seq] = row;
                if (existing is not null)
                {
                    if (inBatch.TryGetValue(existing.Seq, out var earlier))
                    {
                        earlier.NextSeq = seq;
                    }
                    else
                    {
                        superseded.Add((existing.Seq, seq));
                    }
                }

                current[key] = new CurrentVersion(seq, version, row.Deleted);
                outcomes[i] = new WriteOutcome(
                    row.Deleted ? WriteStatus.Deleted : exists ? WriteStatus.Updated : WriteStatus.Created, null);
            }

            Serialize(rows);
            // Mark the replaced versions superseded, then add the new ones.
            await SupersedeAsync(connection, transaction, superseded, cancellationToken);
            await InsertRowsAsync(connection, transaction, rows, cancellationToken);
            await WriteClockAsync(connection, transaction, lastSeq, ts - 1, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            if (loadKeys is not null)
            {
                foreach (var key in keys)
                {
                    if (current.TryGetValue(key, out var version))
                    {
                        loadKeys.Record(key, new LoadKeys.Version(version.Seq, version.Version, version.Deleted));
                    }
                }
            }

            StorageTelemetry.WriteDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
            foreach (var group in rows.GroupBy(x => x.Type))
            {
                StorageTelemetry.VersionsWritten.Add(group.Count(), new KeyValuePair<string, object?>("resource_type", group.Key));
            }

            var r = 0;
            for (var i = 0; returnResources && i < outcomes.Length; i++)
            {
                if (outcomes[i].Status != WriteStatus.NothingToDelete)
                {
                    outcomes[i] = outcomes[i] with { Resource = rows[r++].ToStored() };
                }
            }

            return outcomes;
        }
        finally
        {
            await transaction.DisposeAsync();
            EndWrite();
        }
    }

    private static void Serialize(List<NewVersion> rows)
    {
        static void One(NewVersion row)
        {
            row.Utf8Json = row.Prepared is { } prepared ? prepared.Compose(row.Version, FhirDateRange.FromMicros(row.LastUpdated)) : [];
        }

        if (rows.Count < 64)
        {
            rows.ForEach(One);
        }
        else
        {
            Parallel.ForEach(rows, One);
        }
    }

    /// <summary>The type and id stored under a key (to confirm a <see cref="LoadKeys"/> hash match).</summary>
    private static async Task<(string Type, string Id)?> ReadKeyOfSeqAsync(DbConnection connection, DbTransaction transaction, long seq, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "SELECT res_type, res_id FROM resources WHERE seq = @s";
        AddParameter(command, "@s", seq);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? (reader.GetString(0), reader.GetString(1)) : null;
    }

    private static async Task WriteClockAsync(DbConnection connection, DbTransaction transaction, long lastSeq, long lastTs, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "UPDATE store_state SET last_seq = @s, last_ts = @t WHERE id = 1";
        AddParameter(command, "@s", lastSeq);
        AddParameter(command, "@t", lastTs);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<StoredResource?> ReadAsync(string type, string id, CancellationToken cancellationToken)
    {
        var rows = await QueryAsync(
            $"SELECT {SearchSqlBuilder.Columns} FROM resources r WHERE r.res_type = @t AND r.res_id = @i AND r.next_seq IS NULL",
            [new("@t", type), new("@i", id)], cancellationToken);
        return rows.Count > 0 ? rows[0] : null;
    }

    public async Task<StoredResource?> ReadVersionAsync(string type, string id, int version, CancellationToken cancellationToken)
    {
        var rows = await QueryAsync(
            $"SELECT {SearchSqlBuilder.Columns} FROM resources r WHERE r.res_type = @t AND r.res_id = @i AND r.version = @v",
            [new("@t", type), new("@i", id), new("@v", version)], cancellationToken);
        return rows.Count > 0 ? rows[0] : null;
    }

    public async Task<IReadOnlyList<StoredResource>> HistoryAsync(HistoryQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        var p = new SqlParameters();
        var where = new List<string> { "1 = 1" };
        if (query.Type is not null)
        {
            where.Add("r.res_type = " + p.Add(query.Type));
        }

        if (query.Id is not null)
        {
            where.Add("r.res_id = " + p.Add(query.Id));
        }

        if (query.Since is { } since)
        {
            where.Add("r.last_updated >= " + p.Add(FhirDateRange.ToMicros(since)));
        }

        if (query.BeforeSeq is { } before)
        {
            where.Add("r.seq < " + p.Add(before));
        }

        var sql = $"SELECT {SearchSqlBuilder.Columns} FROM resources r WHERE {string.Join(" AND ", where)} ORDER BY r.seq DESC LIMIT {query.Count.ToString(CultureInfo.InvariantCulture)}";
        return await QueryAsync(sql, p.Values, cancellationToken);
    }

    public async Task<SearchResult> SearchAsync(SearchQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        using var activity = StorageTelemetry.ActivitySource.StartActivity("helios.storage.search");
        activity?.SetTag("helios.resource_type", query.Type);
        var started = Stopwatch.GetTimestamp();
        try
        {
            return await SearchCoreAsync(query, cancellationToken);
        }
        finally
        {
            StorageTelemetry.SearchDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, new KeyValuePair<string, object?>("resource_type", query.Type));
        }
    }

    private async Task<SearchResult> SearchCoreAsync(SearchQuery query, CancellationToken cancellationToken)
    {
        var p = new SqlParameters();
        var where = SearchSqlBuilder.BuildWhere(query, p);
        long? total = null;
        if (query.IncludeTotal)
        {
            total = await ScalarAsync($"SELECT COUNT(*) FROM resources r WHERE {where}", p.Values, cancellationToken);
        }

        if (query.CountOnly)
        {
            return new SearchResult([], [], total, null);
        }

        var sortKey = SearchSqlBuilder.SortKey(query, p);
        var descending = query.Sort?.Descending == true;
        var cmp = descending ? "<" : ">";
        var dir = descending ? "DESC" : "ASC";
        var cursor = SearchCursor.Decode(query.Cursor);
        string sql;
        if (sortKey is null)
        {
            var keyset = cursor is null ? string.Empty : $" AND r.seq {cmp} {p.Add(cursor.Value.Seq)}";
            sql = $"SELECT {SearchSqlBuilder.Columns}, NULL AS k FROM resources r WHERE {where}{keyset} ORDER BY r.seq {dir} LIMIT {query.Count + 1}";
        }
        else
        {
            var keyset = string.Empty;
            if (cursor is { Key: { } key })
            {
                object keyValue = query.Sort!.Name == "_id" ? key
                    : long.TryParse(key, NumberStyles.Integer, CultureInfo.InvariantCulture, out var k) ? k
                    : throw new SearchException("The paging cursor does not belong to this search; start again from the first page.");
                var kp = p.Add(keyValue);
                keyset = $" WHERE (q.k {cmp} {kp} OR (q.k = {kp} AND q.seq {cmp} {p.Add(cursor.Value.Seq)}))";
            }

            sql = $"SELECT * FROM (SELECT {SearchSqlBuilder.Columns}, {sortKey} AS k FROM resources r WHERE {where}) q{keyset} ORDER BY q.k {dir}, q.seq {dir} LIMIT {query.Count + 1}";
        }

        var keys = new List<string?>();
        var matches = await QueryAsync(sql, p.Values, cancellationToken, keys);
        string? next = null;
        if (matches.Count > query.Count)
        {
            matches.RemoveAt(matches.Count - 1);
            var last = matches[^1];
            next = SearchCursor.Encode(sortKey is null ? null : keys[matches.Count - 1], last.Seq);
        }

        var included = await IncludesAsync(query, matches, cancellationToken);
        return new SearchResult(matches, included, total, next);
    }

    private async Task<List<StoredResource>> IncludesAsync(SearchQuery query, List<StoredResource> matches, CancellationToken cancellationToken)
    {
        var result = new List<StoredResource>();
        if (matches.Count == 0 || (query.Includes.Count == 0 && query.RevIncludes.Count == 0))
        {
            return result;
        }

        var seen = new HashSet<long>(matches.Select(m => m.Seq));
        foreach (var include in query.Includes.Where(i => i.SourceType == query.Type))
        {
            var p = new SqlParameters();
            var seqs = string.Join(", ", matches.Select(m => p.Add(m.Seq)));
            var target = include.TargetType is null ? string.Empty : $" AND x.target_type = {p.Add(include.TargetType)}";
            var sql = $"SELECT {SearchSqlBuilder.Columns} FROM resources r JOIN idx_reference x ON x.target_type = r.res_type AND x.target_id = r.res_id " +
                      $"WHERE x.seq IN ({seqs}) AND {IncludeKey(include, "x.pid")}{target} AND r.next_seq IS NULL AND r.deleted = 0";
            foreach (var row in await QueryAsync(sql, p.Values, cancellationToken))
            {
                if (seen.Add(row.Seq))
                {
                    result.Add(row);
                }
            }
        }

        foreach (var include in query.RevIncludes)
        {
            if (include.TargetType is not null && include.TargetType != query.Type)
            {
                continue;
            }

            var p = new SqlParameters();
            var ids = string.Join(", ", matches.Select(m => p.Add(m.Id)));
            var sql = $"SELECT {SearchSqlBuilder.Columns} FROM resources r WHERE r.res_type = {p.Add(include.SourceType)} AND r.next_seq IS NULL AND r.deleted = 0 AND r.seq IN " +
                      $"(SELECT seq FROM idx_reference WHERE {IncludeKey(include, "pid")} AND target_type = {p.Add(query.Type)} AND target_id IN ({ids}))";
            foreach (var row in await QueryAsync(sql, p.Values, cancellationToken))
            {
                if (seen.Add(row.Seq))
                {
                    result.Add(row);
                }
            }
        }

        return result;
    }

    private string IncludeKey(IncludeSpec include, string column) =>
        extractor.Registry.Find(include.SourceType, include.Param) is { Kind: IndexKind.Reference } parameter
            ? SearchSqlBuilder.KeyCondition(parameter, column)
            : throw new ArgumentException($"{include.SourceType} has no reference search parameter '{include.Param}'.", nameof(include));

    public IAsyncEnumerable<StoredResource> ReadSnapshotAsync(SnapshotRange range, CancellationToken cancellationToken)
    {
        var query = BuildSnapshotQuery(range, SearchSqlBuilder.Columns);
        return query is null ? AsyncEnumerable.Empty<StoredResource>() : StreamAsync(query.Value.Sql, query.Value.Parameters, cancellationToken);
    }

    public async Task<SnapshotCopy> CopySnapshotAsync(SnapshotRange range, ISnapshotSink sink, long maxBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        var query = BuildSnapshotQuery(range, "r.seq, r.json");
        if (query is null)
        {
            return new SnapshotCopy(0, 0, range.AfterSeq, true);
        }

        var buffer = new NdjsonBuffer(sink);
        var (rows, lastSeq, stoppedEarly) = await CopyRowsAsync(query.Value.Sql, query.Value.Parameters, buffer, maxBytes, cancellationToken);
        await buffer.FlushAsync(cancellationToken);
        return new SnapshotCopy(rows, buffer.Total, rows == 0 ? range.AfterSeq : lastSeq, !stoppedEarly && rows < range.Limit);
    }

    /// <summary>Runs the snapshot query (columns: seq, UTF-8 JSON) and appends each row to the buffer, stopping after
    /// the row that brings the buffer's total to <paramref name="maxBytes"/>. Returns (rows, last seq, stopped early).</summary>
    protected abstract Task<(long Rows, long LastSeq, bool StoppedEarly)> CopyRowsAsync(
        string sql, List<KeyValuePair<string, object>> parameters, NdjsonBuffer buffer, long maxBytes, CancellationToken cancellationToken);

    private static (string Sql, List<KeyValuePair<string, object>> Parameters)? BuildSnapshotQuery(SnapshotRange range, string columns)
    {
        ArgumentNullException.ThrowIfNull(range);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(range.Limit);
        var p = new SqlParameters();
        var snapshot = p.Add(range.SnapshotSeq);
        var sql = new StringBuilder($"SELECT {columns} FROM resources r WHERE r.res_type = {p.Add(range.Type)}")
            .Append($" AND r.seq > {p.Add(range.AfterSeq)} AND r.seq <= {p.Add(Math.Min(range.UpToSeq, range.SnapshotSeq))}")
            .Append($" AND (r.next_seq IS NULL OR r.next_seq > {snapshot}) AND r.deleted = 0");
        if (range.Since is { } since)
        {
            sql.Append($" AND r.last_updated > {p.Add(FhirDateRange.ToMicros(since))}");
        }

        if (range.PatientSetId is { } setId)
        {
            var set = p.Add(setId);
            sql.Append(range.Type == "Patient"
                ? $" AND r.res_id IN (SELECT patient_id FROM patient_sets WHERE set_id = {set})"
                : $" AND EXISTS (SELECT 1 FROM compartment c JOIN patient_sets m ON m.patient_id = c.patient_id AND m.set_id = {set} WHERE c.seq = r.seq)");
        }

        if (range.PatientIds is { } patients)
        {
            if (patients.Count == 0)
            {
                return null;
            }

            var ids = string.Join(", ", patients.Select(id => p.Add(id)));
            sql.Append(range.Type == "Patient"
                ? $" AND r.res_id IN ({ids})"
                : $" AND r.seq IN (SELECT seq FROM compartment WHERE patient_id IN ({ids}) AND res_type = {p.Add(range.Type)})");
        }

        sql.Append($" ORDER BY r.seq LIMIT {range.Limit.ToString(CultureInfo.InvariantCulture)}");
        return (sql.ToString(), p.Values);
    }

    private async IAsyncEnumerable<StoredResource> StreamAsync(
        string sql, List<KeyValuePair<string, object>> parameters, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = CreateCommand(connection, sql, parameters);

        await using var reader = await command.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess, cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            yield return new StoredResource(
                reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetInt32(3),
                FhirDateRange.FromMicros(reader.GetInt64(4)), reader.GetInt32(5) != 0, reader.GetString(6));
        }
    }

    public async Task<StoreSnapshot> CaptureSnapshotAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        var transaction = await BeginWriteAsync(connection, cancellationToken);
        try
        {
            var (lastSeq, lastTs) = await ReadClockAsync(connection, transaction, cancellationToken);
            var ts = Math.Max(FhirDateRange.ToMicros(timeProvider.GetUtcNow()), lastTs);
            await WriteClockAsync(connection, transaction, lastSeq, ts, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            return new StoreSnapshot(lastSeq, FhirDateRange.FromMicros(ts));
        }
        finally
        {
            await transaction.DisposeAsync();
            EndWrite();
        }
    }

    public async Task<IReadOnlyList<KeyRange>> GetKeyRangesAsync(string type, long snapshotSeq, int rowsPerRange, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rowsPerRange);
        var ranges = new List<KeyRange>();
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        // Versions, not current versions: an index-only scan of (res_type, seq) that never reads the JSON pages. The
        // counts are upper bounds of what each range exports (superseded versions and tombstones are skipped then).
        command.CommandText = "SELECT seq FROM resources WHERE res_type = @t AND seq <= @s ORDER BY seq";
        AddParameter(command, "@t", type);
        AddParameter(command, "@s", snapshotSeq);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        long after = 0, last = 0, rows = 0;
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

    public async Task<IReadOnlyList<string>> GetTypesAsync(long snapshotSeq, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT DISTINCT res_type FROM resources WHERE seq <= @s ORDER BY res_type";
        AddParameter(command, "@s", snapshotSeq);
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
        var rows = await QueryAsync(
            $"SELECT {SearchSqlBuilder.Columns} FROM resources r WHERE r.res_type = @t AND r.res_id = @i AND r.seq <= @s AND (r.next_seq IS NULL OR r.next_seq > @s)",
            [new("@t", type), new("@i", id), new("@s", snapshotSeq)], cancellationToken);
        return rows.Count > 0 ? rows[0] : null;
    }

    public async Task AddToPatientSetAsync(string setId, IReadOnlyCollection<string> patientIds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(patientIds);
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        foreach (var chunk in patientIds.Distinct(StringComparer.Ordinal).Chunk(400))
        {
            await using var command = connection.CreateCommand();
            command.Transaction = transaction;
            var values = new StringBuilder();
            AddParameter(command, "@set", setId);
            for (var i = 0; i < chunk.Length; i++)
            {
                values.Append(i == 0 ? "" : ", ").Append(CultureInfo.InvariantCulture, $"(@set, @p{i})");
                AddParameter(command, "@p" + i.ToString(CultureInfo.InvariantCulture), chunk[i]);
            }

            command.CommandText = $"INSERT INTO patient_sets (set_id, patient_id) VALUES {values} ON CONFLICT DO NOTHING";
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    public async Task<long> FillPatientSetFromSnapshotAsync(string setId, long snapshotSeq, CancellationToken cancellationToken) =>
        await ExecuteAsync(
            "INSERT INTO patient_sets (set_id, patient_id) SELECT @set, res_id FROM resources WHERE res_type = 'Patient' AND seq <= @s AND (next_seq IS NULL OR next_seq > @s) AND deleted = 0 ON CONFLICT DO NOTHING",
            [new("@set", setId), new("@s", snapshotSeq)], cancellationToken);

    public async Task DeletePatientSetAsync(string setId, CancellationToken cancellationToken) =>
        await ExecuteAsync("DELETE FROM patient_sets WHERE set_id = @set", [new("@set", setId)], cancellationToken);

    private async Task<int> ExecuteAsync(string sql, IEnumerable<KeyValuePair<string, object>> parameters, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = CreateCommand(connection, sql, parameters);

        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<long> GetLastSeqAsync(CancellationToken cancellationToken) =>
        await ScalarAsync("SELECT last_seq FROM store_state WHERE id = 1", [], cancellationToken);

    public async Task<IReadOnlyDictionary<string, long>> CountByTypeAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT res_type, COUNT(*) FROM resources WHERE next_seq IS NULL AND deleted = 0 GROUP BY res_type";
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            result[reader.GetString(0)] = reader.GetInt64(1);
        }

        return result;
    }

    protected async Task<long> ScalarAsync(string sql, IEnumerable<KeyValuePair<string, object>> parameters, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = CreateCommand(connection, sql, parameters);

        var result = await command.ExecuteScalarAsync(cancellationToken);
        return Convert.ToInt64(result, CultureInfo.InvariantCulture);
    }

    protected async Task<List<StoredResource>> QueryAsync(string sql, IEnumerable<KeyValuePair<string, object>> parameters, CancellationToken cancellationToken, List<string?>? sortKeys = null)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = CreateCommand(connection, sql, parameters);

        var result = new List<StoredResource>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            result.Add(new StoredResource(
                reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetInt32(3),
                FhirDateRange.FromMicros(reader.GetInt64(4)), reader.GetInt32(5) != 0, reader.GetString(6)));
            if (sortKeys is not null)
            {
                sortKeys.Add(reader.IsDBNull(7) ? null : Convert.ToString(reader.GetValue(7), CultureInfo.InvariantCulture));
            }
        }

        return result;
    }

    /// <summary>A command with its named parameters bound.</summary>
    protected static DbCommand CreateCommand(DbConnection connection, string sql, IEnumerable<KeyValuePair<string, object>> parameters)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(parameters);
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            AddParameter(command, name, value);
        }

        return command;
    }

    protected static void AddParameter(DbCommand command, string name, object? value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value ?? DBNull.Value;
        command.Parameters.Add(parameter);
    }

    /// <summary>The version of a resource that is current at write time.</summary>
    protected internal sealed record CurrentVersion(long Seq, int Version, bool Deleted);

    /// <summary>A version about to be inserted.</summary>
    protected internal sealed class NewVersion(long seq, string type, string id, int version, long lastUpdated, PreparedResource? prepared)
    {
        public long Seq { get; } = seq;
        public string Type { get; } = type;
        public string Id { get; } = id;
        public int Version { get; } = version;
        public long LastUpdated { get; } = lastUpdated;
        /// <summary>A tombstone: no content, no index rows.</summary>
        public bool Deleted => Prepared is null;
        public PreparedResource? Prepared { get; } = prepared;
        public IndexEntries? Index => Prepared?.Index;
        /// <summary>The stored JSON as UTF-8 (empty for a tombstone), written to the database without re-encoding.</summary>
        public byte[] Utf8Json { get; set; } = [];

        public string Json => System.Text.Encoding.UTF8.GetString(Utf8Json);

        /// <summary>Set when a later write of the same batch replaces this version.</summary>
        public long? NextSeq { get; set; }

        public StoredResource ToStored() => new(Seq, Type, Id, Version, FhirDateRange.FromMicros(LastUpdated), Deleted, Json);
    }
}

/// <summary>Keyset cursor: the last row's sort key and seq, base64url-encoded.</summary>
internal static class SearchCursor
{
    public static string Encode(string? key, long seq)
    {
        var text = (key ?? string.Empty) + "\u001f" + seq.ToString(CultureInfo.InvariantCulture);
        return Convert.ToBase64String(Encoding.UTF8.GetBytes(text)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    public static (string? Key, long Seq)? Decode(string? cursor)
    {
        if (string.IsNullOrEmpty(cursor))
        {
            return null;
        }

        try
        {
            var b64 = cursor.Replace('-', '+').Replace('_', '/');
            b64 = b64.PadRight(b64.Length + ((4 - (b64.Length % 4)) % 4), '=');
            var text = Encoding.UTF8.GetString(Convert.FromBase64String(b64));
            var sep = text.LastIndexOf('\u001f');
            var seq = long.Parse(text[(sep + 1)..], CultureInfo.InvariantCulture);
            var key = text[..sep];
            return (key.Length == 0 ? null : key, seq);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentOutOfRangeException or OverflowException)
        {
            throw new SearchException("The paging cursor is invalid; start the search again from the first page.");
        }
    }
}
