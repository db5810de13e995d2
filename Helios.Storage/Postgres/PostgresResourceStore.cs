using System.Data.Common;
using System.Globalization;
using Helios.Storage.Indexing;
using Helios.Storage.Sql;
using Npgsql;
using NpgsqlTypes;

namespace Helios.Storage.Postgres;

/// <summary>The PostgreSQL store. Writers serialize on the <c>store_state</c> row lock; rows go in by binary COPY.</summary>
public sealed class PostgresResourceStore(NpgsqlDataSource dataSource, IndexExtractor extractor, TimeProvider timeProvider)
    : SqlResourceStore(extractor, timeProvider), ISchemaMigrator
{
    /// <summary>Arbitrary constant for the migration advisory lock ("Helios" in ASCII).</summary>
    private const long MigrationLockKey = 0x48656c696f73;

    /// <summary>Creates or upgrades the schema. Several instances may start at once: an advisory lock serializes them.</summary>
    public async Task MigrateAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await Exec(connection, transaction, $"SELECT pg_advisory_xact_lock({MigrationLockKey})", cancellationToken);
        await Exec(connection, transaction, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", cancellationToken);
        await using var read = new NpgsqlCommand("SELECT COALESCE(MAX(version), 0) FROM schema_version", connection, transaction);
        var current = Convert.ToInt32(await read.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
        var migrations = Schema.Migrations(postgres: true);
        for (var v = current; v < migrations.Count; v++)
        {
            foreach (var statement in migrations[v])
            {
                await Exec(connection, transaction, statement, cancellationToken);
            }

            await Exec(connection, transaction, $"INSERT INTO schema_version (version) VALUES ({v + 1})", cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        await EnsureSecondaryIndexesAsync(cancellationToken);
    }

    protected override bool IsPostgres => true;

    protected override async Task ExecuteDdlAsync(IReadOnlyList<string> statements, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await Exec(connection, transaction, $"SELECT pg_advisory_xact_lock({MigrationLockKey})", cancellationToken);
        await Exec(connection, transaction, "SET LOCAL maintenance_work_mem = '256MB'", cancellationToken);
        foreach (var statement in statements)
        {
            await Exec(connection, transaction, statement, cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    private static async Task Exec(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    protected override async ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken) =>
        await dataSource.OpenConnectionAsync(cancellationToken);

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

    internal static string InlineParameters(string sql, List<KeyValuePair<string, object>> parameters)
    {
        var values = parameters.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
        return System.Text.RegularExpressions.Regex.Replace(sql, "@p[0-9]+", m => values[m.Value] switch
        {
            long l => l.ToString(CultureInfo.InvariantCulture),
            int i => i.ToString(CultureInfo.InvariantCulture),
            string s when !s.Contains('\0', StringComparison.Ordinal) => "E'" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "''", StringComparison.Ordinal) + "'",
            var other => throw new ArgumentException($"Cannot inline a parameter of type {other.GetType().Name} into COPY.", nameof(parameters)),
        });
    }

    protected override async ValueTask<DbTransaction> BeginWriteAsync(DbConnection connection, CancellationToken cancellationToken) =>
        await ((NpgsqlConnection)connection).BeginTransactionAsync(cancellationToken);

    protected override async Task<(long LastSeq, long LastTs)> ReadClockAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT last_seq, last_ts FROM store_state WHERE id = 1 FOR UPDATE", (NpgsqlConnection)connection, (NpgsqlTransaction)transaction);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    protected override async Task<Dictionary<(string Type, string Id), CurrentVersion>> LookupCurrentAsync(
        DbConnection connection, DbTransaction transaction, IReadOnlyCollection<(string Type, string Id)> keys, CancellationToken cancellationToken)
    {
        var result = new Dictionary<(string, string), CurrentVersion>(keys.Count);
        await using var command = new NpgsqlCommand(
            "SELECT r.res_type, r.res_id, r.seq, r.version, r.deleted FROM resources r JOIN unnest(@t, @i) AS k(t, i) ON r.res_type = k.t AND r.res_id = k.i WHERE r.next_seq IS NULL",
            (NpgsqlConnection)connection, (NpgsqlTransaction)transaction);
        command.Parameters.Add(new NpgsqlParameter<string[]>("t", keys.Select(k => k.Type).ToArray()));
        command.Parameters.Add(new NpgsqlParameter<string[]>("i", keys.Select(k => k.Id).ToArray()));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            result[(reader.GetString(0), reader.GetString(1))] = new CurrentVersion(reader.GetInt64(2), reader.GetInt32(3), reader.GetInt32(4) != 0);
        }

        return result;
    }

    protected override async Task InsertRowsAsync(DbConnection connection, DbTransaction transaction, IReadOnlyList<NewVersion> rows, CancellationToken cancellationToken)
    {
        var c = (NpgsqlConnection)connection;
        await using (var w = await c.BeginBinaryImportAsync("COPY resources (seq, res_type, res_id, version, last_updated, deleted, next_seq, json) FROM STDIN (FORMAT BINARY)", cancellationToken))
        {
            foreach (var row in rows)
            {
                await w.StartRowAsync(cancellationToken);
                await w.WriteAsync(row.Seq, NpgsqlDbType.Bigint, cancellationToken);
                await w.WriteAsync(row.Type, NpgsqlDbType.Text, cancellationToken);
                await w.WriteAsync(row.Id, NpgsqlDbType.Text, cancellationToken);
                await w.WriteAsync(row.Version, NpgsqlDbType.Integer, cancellationToken);
                await w.WriteAsync(row.LastUpdated, NpgsqlDbType.Bigint, cancellationToken);
                await w.WriteAsync(row.Deleted ? 1 : 0, NpgsqlDbType.Integer, cancellationToken);
                if (row.NextSeq is { } next)
                {
                    await w.WriteAsync(next, NpgsqlDbType.Bigint, cancellationToken);
                }
                else
                {
                    await w.WriteNullAsync(cancellationToken);
                }

                await w.WriteAsync(row.Json, NpgsqlDbType.Text, cancellationToken);
            }

            await w.CompleteAsync(cancellationToken);
        }

        var live = rows.Where(r => !r.Deleted && r.Index is not null).ToList();
        await Copy(c, "idx_token (seq, res_type, param, system, code)", live, r => r.Index!.Tokens, async (w, row, e, ct) =>
        {
            await w.WriteAsync(e.Param, NpgsqlDbType.Text, ct);
            await WriteNullable(w, e.System, ct);
            await WriteNullable(w, e.Code, ct);
        }, cancellationToken);
        await Copy(c, "idx_string (seq, res_type, param, normalized, exact)", live, r => r.Index!.Strings, async (w, row, e, ct) =>
        {
            await w.WriteAsync(e.Param, NpgsqlDbType.Text, ct);
            await w.WriteAsync(e.Normalized, NpgsqlDbType.Text, ct);
            await w.WriteAsync(e.Exact, NpgsqlDbType.Text, ct);
        }, cancellationToken);
        await Copy(c, "idx_reference (seq, res_type, param, target_type, target_id)", live, r => r.Index!.References, async (w, row, e, ct) =>
        {
            await w.WriteAsync(e.Param, NpgsqlDbType.Text, ct);
            await WriteNullable(w, e.TargetType, ct);
            await w.WriteAsync(e.TargetId, NpgsqlDbType.Text, ct);
        }, cancellationToken);
        await Copy(c, "idx_date (seq, res_type, param, low, high)", live, r => r.Index!.Dates, async (w, row, e, ct) =>
        {
            await w.WriteAsync(e.Param, NpgsqlDbType.Text, ct);
            await w.WriteAsync(e.Low, NpgsqlDbType.Bigint, ct);
            await w.WriteAsync(e.High, NpgsqlDbType.Bigint, ct);
        }, cancellationToken);
        await Copy(c, "idx_number (seq, res_type, param, value)", live, r => r.Index!.Numbers, async (w, row, e, ct) =>
        {
            await w.WriteAsync(e.Param, NpgsqlDbType.Text, ct);
            await w.WriteAsync((double)e.Value, NpgsqlDbType.Double, ct);
        }, cancellationToken);
        await Copy(c, "idx_quantity (seq, res_type, param, system, code, value)", live, r => r.Index!.Quantities, async (w, row, e, ct) =>
        {
            await w.WriteAsync(e.Param, NpgsqlDbType.Text, ct);
            await WriteNullable(w, e.System, ct);
            await WriteNullable(w, e.Code, ct);
            await w.WriteAsync((double)e.Value, NpgsqlDbType.Double, ct);
        }, cancellationToken);
        await Copy(c, "idx_uri (seq, res_type, param, value)", live, r => r.Index!.Uris, async (w, row, e, ct) =>
        {
            await w.WriteAsync(e.Param, NpgsqlDbType.Text, ct);
            await w.WriteAsync(e.Value, NpgsqlDbType.Text, ct);
        }, cancellationToken);
        await Copy(c, "compartment (seq, res_type, patient_id)", live, r => r.Index!.Compartments, async (w, row, patient, ct) =>
        {
            await w.WriteAsync(patient, NpgsqlDbType.Text, ct);
        }, cancellationToken);
    }

    private static async Task WriteNullable(NpgsqlBinaryImporter writer, string? value, CancellationToken cancellationToken)
    {
        if (value is null)
        {
            await writer.WriteNullAsync(cancellationToken);
        }
        else
        {
            await writer.WriteAsync(value, NpgsqlDbType.Text, cancellationToken);
        }
    }

    private static async Task Copy<T>(
        NpgsqlConnection connection, string target, List<NewVersion> rows, Func<NewVersion, IEnumerable<T>> entries,
        Func<NpgsqlBinaryImporter, NewVersion, T, CancellationToken, Task> write, CancellationToken cancellationToken)
    {
        if (!rows.Any(r => entries(r).Any()))
        {
            return;
        }

        await using var w = await connection.BeginBinaryImportAsync($"COPY {target} FROM STDIN (FORMAT BINARY)", cancellationToken);
        foreach (var row in rows)
        {
            foreach (var entry in entries(row))
            {
                await w.StartRowAsync(cancellationToken);
                await w.WriteAsync(row.Seq, NpgsqlDbType.Bigint, cancellationToken);
                await w.WriteAsync(row.Type, NpgsqlDbType.Text, cancellationToken);
                await write(w, row, entry, cancellationToken);
            }
        }

        await w.CompleteAsync(cancellationToken);
    }

    protected override async Task SupersedeAsync(DbConnection connection, DbTransaction transaction, IReadOnlyList<(long OldSeq, long NewSeq)> pairs, CancellationToken cancellationToken)
    {
        if (pairs.Count == 0)
        {
            return;
        }

        await using var command = new NpgsqlCommand(
            "UPDATE resources r SET next_seq = u.n FROM unnest(@o, @n) AS u(o, n) WHERE r.seq = u.o",
            (NpgsqlConnection)connection, (NpgsqlTransaction)transaction);
        command.Parameters.Add(new NpgsqlParameter<long[]>("o", pairs.Select(p => p.OldSeq).ToArray()));
        command.Parameters.Add(new NpgsqlParameter<long[]>("n", pairs.Select(p => p.NewSeq).ToArray()));
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
