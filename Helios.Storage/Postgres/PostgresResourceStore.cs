using System.Data.Common;
using Helios.Storage.Indexing;
using Helios.Storage.Sql;
using Npgsql;

namespace Helios.Storage.Postgres;

/// <summary>The PostgreSQL store. Writers serialize on the <c>store_state</c> row lock; rows go in by binary COPY.</summary>
public sealed class PostgresResourceStore(NpgsqlDataSource dataSource, IndexExtractor extractor, TimeProvider timeProvider)
    : SqlResourceStore(extractor, timeProvider), ISchemaMigrator
{
    /// <summary>Arbitrary constant for the migration advisory lock ("Helios" in ASCII).</summary>
    private const long MigrationLockKey = 0x48656c696f73;

    /// <summary>Creates or upgrades the schema. Several instances may start at once: an advisory lock serializes them.</summary>
    public Task MigrateAsync(CancellationToken cancellationToken) => MigrateAsync(int.MaxValue, cancellationToken);

    /// <summary>Applies the migrations up to <paramref name="upTo"/> (tests start from an older schema).</summary>
    internal async Task MigrateAsync(int upTo, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await Exec(connection, transaction, $"SELECT pg_advisory_xact_lock({MigrationLockKey})", cancellationToken);
        await Exec(connection, transaction, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", cancellationToken);
        await using var read = new NpgsqlCommand("SELECT COALESCE(MAX(version), 0) FROM schema_version", connection, transaction);
        var current = Convert.ToInt32(await read.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
        var migrations = Schema.Migrations(postgres: true, Extractor.Registry);
        for (var v = current; v < Math.Min(upTo, migrations.Count); v++)
        {
            foreach (var statement in migrations[v])
            {
                await Exec(connection, transaction, statement, cancellationToken);
            }

            await Exec(connection, transaction, $"INSERT INTO schema_version (version) VALUES ({v + 1})", cancellationToken);
        }

        if (upTo < migrations.Count)
        {
            await transaction.CommitAsync(cancellationToken);
            return;
        }

        await Exec(connection, transaction, Schema.SearchParamsUpsert(Extractor.Registry), cancellationToken);

        await transaction.CommitAsync(cancellationToken);
        await EnsureSecondaryIndexesAsync(cancellationToken);
    }

    protected override bool IsPostgres => true;

    /// <summary>An error the server reported for a statement: its transaction is rolled back. (An I/O error is not:
    /// the commit may have been applied.)</summary>
    protected override bool RolledBack(Exception exception) => exception is PostgresException;

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

    /// <summary>Builds the secondary indexes on as many connections as there are cores, one table's indexes per
    /// group (PostgreSQL builds indexes of different tables at once). Each group holds its own advisory lock, so
    /// instances starting together build each index once.</summary>
    public override async Task EnsureSecondaryIndexesAsync(CancellationToken cancellationToken)
    {
        var groups = Schema.SecondaryIndexes(postgres: true)
            .GroupBy(i => i.Definition[..i.Definition.IndexOf(' ', StringComparison.Ordinal)], StringComparer.Ordinal)
            .Select(g => g.Select(i => $"CREATE INDEX IF NOT EXISTS {i.Name} ON {i.Definition}").ToList())
            .OrderByDescending(g => g.Count)
            .Prepend([Schema.NaturalKeyIndex])
            .ToList();
        var lanes = Math.Clamp(Environment.ProcessorCount, 1, groups.Count);
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, lanes).Select(_ => Task.Run(async () =>
        {
            int index;
            while ((index = Interlocked.Increment(ref next)) < groups.Count)
            {
                await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
                await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                await Exec(connection, transaction, $"SELECT pg_advisory_xact_lock({MigrationLockKey + 1 + index})", cancellationToken);
                await Exec(connection, transaction, "SET LOCAL maintenance_work_mem = '256MB'", cancellationToken);
                foreach (var statement in groups[index])
                {
                    await Exec(connection, transaction, statement, cancellationToken);
                }

                await transaction.CommitAsync(cancellationToken);
            }
        }, cancellationToken)));
    }

    public override async Task RefreshStatisticsAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand("ANALYZE", connection) { CommandTimeout = 0 };
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task Exec(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    protected internal override async ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken) =>
        await dataSource.OpenConnectionAsync(cancellationToken);

    protected override async ValueTask<DbTransaction> BeginWriteTransactionAsync(DbConnection connection, CancellationToken cancellationToken) =>
        await ((NpgsqlConnection)connection).BeginTransactionAsync(cancellationToken);

    protected override async Task<(long LastSeq, long LastTs)> ReadClockAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT last_seq, last_ts FROM store_state WHERE id = 1 FOR UPDATE", (NpgsqlConnection)connection, (NpgsqlTransaction)transaction);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    /// <summary>The clock's row lock and the key lookup in one round trip (a batch: the lock is taken first).</summary>
    protected override async Task<((long LastSeq, long LastTs) Clock, Dictionary<(string Type, string Id), CurrentVersion> Current)> ReadClockAndLookupAsync(
        DbConnection connection, DbTransaction transaction, IReadOnlyCollection<(string Type, string Id)> keys, CancellationToken cancellationToken)
    {
        await using var batch = new NpgsqlBatch((NpgsqlConnection)connection, (NpgsqlTransaction)transaction)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand("SELECT last_seq, last_ts FROM store_state WHERE id = 1 FOR UPDATE"),
                new NpgsqlBatchCommand(LookupSql)
                {
                    Parameters =
                    {
                        new NpgsqlParameter<string[]>("t", keys.Select(k => k.Type).ToArray()),
                        new NpgsqlParameter<string[]>("i", keys.Select(k => k.Id).ToArray()),
                    },
                },
            },
        };
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        var clock = (reader.GetInt64(0), reader.GetInt64(1));
        await reader.NextResultAsync(cancellationToken);
        var result = new Dictionary<(string, string), CurrentVersion>(keys.Count);
        while (await reader.ReadAsync(cancellationToken))
        {
            result[(reader.GetString(0), reader.GetString(1))] = new CurrentVersion(reader.GetInt64(2), reader.GetInt32(3), reader.GetInt32(4) != 0);
        }

        return (clock, result);
    }

    // One probe of the current-version index per key, whatever the planner thinks of the table's size: the LIMIT keeps
    // the LATERAL subquery from being flattened into a join, which the planner (with the statistics of a table that
    // grows during a load) turned into a merge join over the whole index, once per batch.
    private const string LookupSql =
        "SELECT r.res_type, r.res_id, r.seq, r.version, r.deleted FROM unnest(@t, @i) AS k(t, i) CROSS JOIN LATERAL " +
        "(SELECT x.res_type, x.res_id, x.seq, x.version, x.deleted FROM resources x WHERE x.res_type = k.t AND x.res_id = k.i AND x.next_seq IS NULL LIMIT 1) r";

    protected override async Task<Dictionary<(string Type, string Id), CurrentVersion>> LookupCurrentAsync(
        DbConnection connection, DbTransaction transaction, IReadOnlyCollection<(string Type, string Id)> keys, CancellationToken cancellationToken)
    {
        var result = new Dictionary<(string, string), CurrentVersion>(keys.Count);
        await using var command = new NpgsqlCommand(LookupSql, (NpgsqlConnection)connection, (NpgsqlTransaction)transaction);
        command.Parameters.Add(new NpgsqlParameter<string[]>("t", keys.Select(k => k.Type).ToArray()));
        command.Parameters.Add(new NpgsqlParameter<string[]>("i", keys.Select(k => k.Id).ToArray()));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            result[(reader.GetString(0), reader.GetString(1))] = new CurrentVersion(reader.GetInt64(2), reader.GetInt32(3), reader.GetInt32(4) != 0);
        }

        return result;
    }

    /// <summary>Writes up to this many versions (and <see cref="SmallWriteMaxIndexRows"/> index rows) go in as one
    /// batch (supersede, <c>INSERT ... SELECT FROM unnest(...)</c> per table, clock): one round trip under the writer
    /// lock instead of two per COPY (up to nine tables) and two more. Larger writes and loads use binary COPY.</summary>
    private const int SmallWriteMaxRows = 32;

    private const int SmallWriteMaxIndexRows = 4096;

    /// <summary>One binary COPY per table, encoded by <see cref="BinaryCopyWriter"/> (no per-field awaits).</summary>
    protected override async Task InsertRowsAsync(DbConnection connection, DbTransaction transaction, IReadOnlyList<NewVersion> rows, CancellationToken cancellationToken)
    {
        var c = (NpgsqlConnection)connection;

        await Copy<NewVersion>(c, "resources (seq, res_type, res_id, version, last_updated, deleted, next_seq, json)", rows, static r => [r], static (w, row, _) =>
        {
            w.StartRow(8);
            w.Write(row.Seq);
            w.Write(row.Type);
            w.Write(row.Id);
            w.Write(row.Version);
            w.Write(row.LastUpdated);
            w.Write(row.Deleted ? 1 : 0);
            w.Write(row.NextSeq);
            w.WriteUtf8Text(row.Utf8Json);
        }, cancellationToken);

        var live = rows.Where(r => !r.Deleted && r.Index is not null).ToList();
        var registry = Extractor.Registry;
        await Copy(c, "idx_token (seq, pid, system, code)", live, static r => r.Index!.Tokens, (w, row, e) =>
        {
            Start(w, 4, row.Seq, registry.KeyOf(row.Type, e.Param));
            w.Write(e.System);
            w.Write(e.Code);
        }, cancellationToken);
        await Copy(c, "idx_string (seq, pid, normalized, exact)", live, static r => r.Index!.Strings, (w, row, e) =>
        {
            Start(w, 4, row.Seq, registry.KeyOf(row.Type, e.Param));
            w.Write(e.Normalized);
            w.Write(e.Exact);
        }, cancellationToken);
        await Copy(c, "idx_reference (seq, pid, target_type, target_id)", live, static r => r.Index!.References, (w, row, e) =>
        {
            Start(w, 4, row.Seq, registry.KeyOf(row.Type, e.Param));
            w.Write(e.TargetType);
            w.Write(e.TargetId);
        }, cancellationToken);
        await Copy(c, "idx_date (seq, pid, low, high)", live, static r => r.Index!.Dates, (w, row, e) =>
        {
            Start(w, 4, row.Seq, registry.KeyOf(row.Type, e.Param));
            w.Write(e.Low);
            w.Write(e.High);
        }, cancellationToken);
        await Copy(c, "idx_number (seq, pid, value)", live, static r => r.Index!.Numbers, (w, row, e) =>
        {
            Start(w, 3, row.Seq, registry.KeyOf(row.Type, e.Param));
            w.Write((double)e.Value);
        }, cancellationToken);
        await Copy(c, "idx_quantity (seq, pid, system, code, value)", live, static r => r.Index!.Quantities, (w, row, e) =>
        {
            Start(w, 5, row.Seq, registry.KeyOf(row.Type, e.Param));
            w.Write(e.System);
            w.Write(e.Code);
            w.Write((double)e.Value);
        }, cancellationToken);
        await Copy(c, "idx_uri (seq, pid, value)", live, static r => r.Index!.Uris, (w, row, e) =>
        {
            Start(w, 3, row.Seq, registry.KeyOf(row.Type, e.Param));
            w.Write(e.Value);
        }, cancellationToken);
        await Copy(c, "compartment (seq, res_type, patient_id)", live, static r => r.Index!.Compartments, static (w, row, patient) =>
        {
            w.StartRow(3);
            w.Write(row.Seq);
            w.Write(row.Type);
            w.Write(patient);
        }, cancellationToken);
    }

    /// <summary>A small write in one round trip: the superseded versions, one <c>INSERT ... SELECT * FROM unnest</c>
    /// per table that gets rows, and the clock, as one batch.</summary>
    protected override async Task<bool> WriteVersionsAsync(DbConnection connection, DbTransaction transaction, IReadOnlyList<(long OldSeq, long NewSeq)> superseded,
        IReadOnlyList<NewVersion> rows, long lastSeq, long lastTs, CancellationToken cancellationToken)
    {
        if (rows.Count > SmallWriteMaxRows || rows.Sum(r => r.Index?.Count ?? 0) > SmallWriteMaxIndexRows)
        {
            return await base.WriteVersionsAsync(connection, transaction, superseded, rows, lastSeq, lastTs, cancellationToken);
        }

        await using var batch = new NpgsqlBatch((NpgsqlConnection)connection, (NpgsqlTransaction)transaction);
        void Add(string sql, params NpgsqlParameter[] parameters)
        {
            var command = new NpgsqlBatchCommand(sql);
            command.Parameters.AddRange(parameters);
            batch.BatchCommands.Add(command);
        }

        if (superseded.Count > 0)
        {
            Add("UPDATE resources r SET next_seq = u.n FROM unnest($1, $2) AS u(o, n) WHERE r.seq = u.o",
                new NpgsqlParameter<long[]> { TypedValue = [.. superseded.Select(p => p.OldSeq)] },
                new NpgsqlParameter<long[]> { TypedValue = [.. superseded.Select(p => p.NewSeq)] });
        }

        Add("INSERT INTO resources (seq, res_type, res_id, version, last_updated, deleted, next_seq, json) SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8)",
            new NpgsqlParameter<long[]> { TypedValue = [.. rows.Select(r => r.Seq)] },
            new NpgsqlParameter<string[]> { TypedValue = [.. rows.Select(r => r.Type)] },
            new NpgsqlParameter<string[]> { TypedValue = [.. rows.Select(r => r.Id)] },
            new NpgsqlParameter<int[]> { TypedValue = [.. rows.Select(r => r.Version)] },
            new NpgsqlParameter<long[]> { TypedValue = [.. rows.Select(r => r.LastUpdated)] },
            new NpgsqlParameter<int[]> { TypedValue = [.. rows.Select(r => r.Deleted ? 1 : 0)] },
            new NpgsqlParameter<long?[]> { TypedValue = [.. rows.Select(r => r.NextSeq)] },
            new NpgsqlParameter<string[]> { TypedValue = [.. rows.Select(r => r.Json)] });

        var live = rows.Where(r => !r.Deleted && r.Index is not null).ToList();
        var registry = Extractor.Registry;
        void Index<T>(string table, Func<IndexEntries, IEnumerable<T>> entries, params Func<NewVersion, T, object?>[] columns)
        {
            var pairs = live.SelectMany(r => entries(r.Index!).Select(e => (Row: r, Entry: e))).ToList();
            if (pairs.Count == 0)
            {
                return;
            }

            var parameters = new List<NpgsqlParameter>
            {
                new NpgsqlParameter<long[]> { TypedValue = [.. pairs.Select(p => p.Row.Seq)] },
            };
            parameters.AddRange(columns.Select(column =>
            {
                var values = pairs.Select(p => column(p.Row, p.Entry)).ToArray();
                return values.FirstOrDefault(v => v is not null) switch
                {
                    int => new NpgsqlParameter<int[]> { TypedValue = [.. values.Select(v => (int)v!)] },
                    long => new NpgsqlParameter<long[]> { TypedValue = [.. values.Select(v => (long)v!)] },
                    double => new NpgsqlParameter<double[]> { TypedValue = [.. values.Select(v => (double)v!)] },
                    _ => (NpgsqlParameter)new NpgsqlParameter<string?[]> { TypedValue = [.. values.Select(v => (string?)v)] },
                };
            }));
            var placeholders = string.Join(", ", Enumerable.Range(1, parameters.Count).Select(i => "$" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Add($"INSERT INTO {table} SELECT * FROM unnest({placeholders})", [.. parameters]);
        }

        Index("idx_token (seq, pid, system, code)", i => i.Tokens, (r, e) => registry.KeyOf(r.Type, e.Param), (_, e) => e.System, (_, e) => e.Code);
        Index("idx_string (seq, pid, normalized, exact)", i => i.Strings, (r, e) => registry.KeyOf(r.Type, e.Param), (_, e) => e.Normalized, (_, e) => e.Exact);
        Index("idx_reference (seq, pid, target_type, target_id)", i => i.References, (r, e) => registry.KeyOf(r.Type, e.Param), (_, e) => e.TargetType, (_, e) => e.TargetId);
        Index("idx_date (seq, pid, low, high)", i => i.Dates, (r, e) => registry.KeyOf(r.Type, e.Param), (_, e) => e.Low, (_, e) => e.High);
        Index("idx_number (seq, pid, value)", i => i.Numbers, (r, e) => registry.KeyOf(r.Type, e.Param), (_, e) => (double)e.Value);
        Index("idx_quantity (seq, pid, system, code, value)", i => i.Quantities, (r, e) => registry.KeyOf(r.Type, e.Param), (_, e) => e.System, (_, e) => e.Code, (_, e) => (double)e.Value);
        Index("idx_uri (seq, pid, value)", i => i.Uris, (r, e) => registry.KeyOf(r.Type, e.Param), (_, e) => e.Value);
        Index("compartment (seq, res_type, patient_id)", i => i.Compartments, (r, _) => r.Type, (_, patient) => patient);
        Add("UPDATE store_state SET last_seq = $1, last_ts = $2 WHERE id = 1",
            new NpgsqlParameter<long> { TypedValue = lastSeq }, new NpgsqlParameter<long> { TypedValue = lastTs });
        // The commit goes in the same round trip: the clock's row lock is held one round trip less. If a statement
        // fails, the server skips the rest of the batch, COMMIT included, and the transaction is rolled back on
        // dispose. Npgsql follows the transaction state the server reports, so it sends no second COMMIT or ROLLBACK.
        Add("COMMIT");
        await batch.ExecuteNonQueryAsync(cancellationToken);
        return true;
    }

    private static void Start(BinaryCopyWriter writer, short fields, long seq, int key)
    {
        writer.StartRow(fields);
        writer.Write(seq);
        writer.Write(key);
    }

    private static async Task Copy<T>(
        NpgsqlConnection connection, string target, IReadOnlyList<NewVersion> rows, Func<NewVersion, IEnumerable<T>> entries,
        Action<BinaryCopyWriter, NewVersion, T> write, CancellationToken cancellationToken)
    {
        if (!rows.Any(r => entries(r).Any()))
        {
            return;
        }

        await using var stream = await connection.BeginRawBinaryCopyAsync($"COPY {target} FROM STDIN (FORMAT BINARY)", cancellationToken);
        var writer = new BinaryCopyWriter(stream);
        writer.WriteHeader();
        foreach (var row in rows)
        {
            foreach (var entry in entries(row))
            {
                write(writer, row, entry);
                if (writer.ShouldFlush)
                {
                    await writer.FlushAsync(cancellationToken);
                }
            }
        }

        await writer.CompleteAsync(cancellationToken);
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
