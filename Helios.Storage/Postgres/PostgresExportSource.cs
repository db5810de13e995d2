using System.Globalization;
using Helios.Storage.Sql;
using Npgsql;

namespace Helios.Storage.Postgres;

/// <summary>The export reads of the PostgreSQL store.</summary>
public sealed class PostgresExportSource(PostgresResourceStore store, NpgsqlDataSource dataSource) : SqlExportSource(store)
{
    /// <summary>One binary <c>COPY (query) TO STDOUT</c> per call: the server streams rows without a per-row protocol
    /// round of the extended query path, and each JSON text arrives as the UTF-8 bytes appended to the part.
    /// COPY takes no bind parameters, so the (typed, generated) parameters are inlined as literals.</summary>
    protected override async Task<(long Rows, long LastSeq, bool StoppedEarly)> CopyRowsAsync(
        string sql, List<KeyValuePair<string, object>> parameters, NdjsonBuffer buffer, long maxBytes, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var stream = await connection.BeginRawBinaryCopyAsync($"COPY ({InlineParameters(sql, parameters)}) TO STDOUT (FORMAT BINARY)", cancellationToken);
        var reader = new BinaryCopyReader(stream);
        await reader.ReadHeaderAsync(cancellationToken);
        long rows = 0, lastSeq = 0;
        var stoppedEarly = false;
        while (await reader.NextRowAsync(cancellationToken))
        {
            if (stoppedEarly)
            {
                // Past the byte bound: drain the rest (at most the range's row limit) so the connection is reusable.
                await reader.SkipFieldAsync(cancellationToken);
                await reader.SkipFieldAsync(cancellationToken);
                continue;
            }

            lastSeq = await reader.ReadInt64FieldAsync(cancellationToken);
            var length = await reader.ReadFieldLengthAsync(cancellationToken);
            await buffer.EnsureRoomAsync(length, cancellationToken);
            await reader.ReadFieldIntoAsync(buffer, length, cancellationToken);
            rows++;
            stoppedEarly = buffer.Total >= maxBytes;
        }

        return (rows, lastSeq, stoppedEarly);
    }

    /// <summary>A fresh set is invisible to the planner's statistics (it would plan the members' join for a handful
    /// of rows, and loop over them for every resource); the table is small, so this takes milliseconds.</summary>
    protected override async Task SetsChangedAsync(CancellationToken cancellationToken) =>
        await store.ExecuteAsync("ANALYZE patient_sets", [], cancellationToken);

    protected override string KeepAsFilter(string condition) => "((" + condition + ") IS TRUE)";

    /// <summary>The per-patient probe spelled out (OFFSET 0 keeps the lateral subquery from being flattened): left to
    /// itself the planner hashed the set against a scan of the whole compartment table, for every batch.</summary>
    protected override string MembersInRange(string set, string type, string after, string upTo) =>
        $"SELECT c.seq FROM patient_sets m CROSS JOIN LATERAL (SELECT c.seq FROM compartment c WHERE c.patient_id = m.patient_id AND c.res_type = {type} AND c.seq > {after} AND c.seq <= {upTo} OFFSET 0) c WHERE m.set_id = {set}";

    internal static string InlineParameters(string sql, List<KeyValuePair<string, object>> parameters)
    {
        var values = parameters.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
        return System.Text.RegularExpressions.Regex.Replace(sql, "@p[0-9]+", m => values[m.Value] switch
        {
            long l => l.ToString(CultureInfo.InvariantCulture),
            int i => i.ToString(CultureInfo.InvariantCulture),
            double d when double.IsFinite(d) => d.ToString("R", CultureInfo.InvariantCulture) + "::float8",
            string s when Search.SearchQueryParser.IsStorableText(s) => "E'" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "''", StringComparison.Ordinal) + "'",
            var other => throw new ArgumentException($"Cannot inline a parameter of type {other.GetType().Name} into COPY.", nameof(parameters)),
        });
    }
}
