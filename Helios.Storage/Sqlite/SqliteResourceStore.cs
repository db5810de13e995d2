using System.Data.Common;
using Helios.Storage.Indexing;
using Helios.Storage.Sql;
using Microsoft.Data.Sqlite;

namespace Helios.Storage.Sqlite;

/// <summary>The embedded store: one SQLite database file (WAL mode). One writer at a time, readers concurrent.</summary>
public sealed class SqliteResourceStore : SqlResourceStore, ISchemaMigrator, IDisposable
{
    private readonly string _connectionString;

    public SqliteResourceStore(string databasePath, IndexExtractor extractor, TimeProvider timeProvider)
        : base(extractor, timeProvider)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(databasePath));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }

        DatabasePath = databasePath;
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = databasePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
    }

    public string DatabasePath { get; }

    /// <summary>Creates or upgrades the schema. Safe to call from several processes at once.</summary>
    public Task MigrateAsync(CancellationToken cancellationToken) => MigrateAsync(int.MaxValue, cancellationToken);

    /// <summary>Applies the migrations up to <paramref name="upTo"/> (tests start from an older schema).</summary>
    internal async Task MigrateAsync(int upTo, CancellationToken cancellationToken)
    {
        await using var connection = (SqliteConnection)await OpenAsync(cancellationToken);
        await using (var wal = connection.CreateCommand())
        {
            wal.CommandText = "PRAGMA journal_mode=WAL";
            await wal.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(System.Data.IsolationLevel.Serializable, cancellationToken);
        await using (var create = connection.CreateCommand())
        {
            create.Transaction = transaction;
            create.CommandText = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)";
            await create.ExecuteNonQueryAsync(cancellationToken);
        }

        long current;
        await using (var read = connection.CreateCommand())
        {
            read.Transaction = transaction;
            read.CommandText = "SELECT COALESCE(MAX(version), 0) FROM schema_version";
            current = (long)(await read.ExecuteScalarAsync(cancellationToken))!;
        }

        var migrations = Schema.Migrations(postgres: false, Extractor.Registry);
        for (var v = (int)current; v < Math.Min(upTo, migrations.Count); v++)
        {
            foreach (var statement in migrations[v])
            {
                await using var command = connection.CreateCommand();
                command.Transaction = transaction;
                command.CommandText = statement;
                await command.ExecuteNonQueryAsync(cancellationToken);
            }

            await using var mark = connection.CreateCommand();
            mark.Transaction = transaction;
            mark.CommandText = "INSERT INTO schema_version (version) VALUES (@v)";
            mark.Parameters.AddWithValue("@v", v + 1);
            await mark.ExecuteNonQueryAsync(cancellationToken);
        }

        if (upTo < migrations.Count)
        {
            await transaction.CommitAsync(cancellationToken);
            return;
        }

        await using (var keys = connection.CreateCommand())
        {
            keys.Transaction = transaction;
            keys.CommandText = Schema.SearchParamsUpsert(Extractor.Registry);
            await keys.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        await EnsureSecondaryIndexesAsync(cancellationToken);
    }

    protected override bool IsPostgres => false;

    /// <summary>SQLite runs in the process: an error of a statement or of the commit leaves the transaction
    /// uncommitted.</summary>
    protected override bool RolledBack(Exception exception) => exception is SqliteException;

    protected override async Task ExecuteDdlAsync(IReadOnlyList<string> statements, CancellationToken cancellationToken)
    {
        await using var connection = (SqliteConnection)await OpenAsync(cancellationToken);
        await using (var threads = connection.CreateCommand())
        {
            // Index builds sort with helper threads (SQLite's multi-threaded sorter).
            threads.CommandText = $"PRAGMA threads={Math.Min(Environment.ProcessorCount, 8).ToString(System.Globalization.CultureInfo.InvariantCulture)}";
            await threads.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
        foreach (var statement in statements)
        {
            await using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = statement;
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    protected internal override async ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var pragma = connection.CreateCommand();
        pragma.CommandText = "PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000; PRAGMA cache_size=-262144; PRAGMA temp_store=MEMORY";
        await pragma.ExecuteNonQueryAsync(cancellationToken);
        return connection;
    }

    // Microsoft.Data.Sqlite starts IMMEDIATE transactions unless asked for deferred ones.
    protected override async ValueTask<DbTransaction> BeginWriteTransactionAsync(DbConnection connection, CancellationToken cancellationToken) =>
        await connection.BeginTransactionAsync(cancellationToken);

    protected override async Task<(long LastSeq, long LastTs)> ReadClockAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "SELECT last_seq, last_ts FROM store_state WHERE id = 1";
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    protected override Task<Dictionary<(string Type, string Id), CurrentVersion>> LookupCurrentAsync(
        DbConnection connection, DbTransaction transaction, IReadOnlyCollection<(string Type, string Id)> keys, CancellationToken cancellationToken)
    {
        var result = new Dictionary<(string, string), CurrentVersion>(keys.Count);
        using var lookup = new RawStatement((SqliteConnection)connection, "SELECT seq, version, deleted FROM resources WHERE res_type = ? AND res_id = ? AND next_seq IS NULL");
        foreach (var key in keys)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (lookup.Bind(1, key.Type).Bind(2, key.Id).ReadSingle(out var seq, out var version, out var deleted))
            {
                result[key] = new CurrentVersion(seq, (int)version, deleted != 0);
            }
        }

        return Task.FromResult(result);
    }

    protected override Task InsertRowsAsync(DbConnection connection, DbTransaction transaction, IReadOnlyList<NewVersion> rows, CancellationToken cancellationToken)
    {
        var c = (SqliteConnection)connection;
        var registry = Extractor.Registry;
        using var resource = new RawStatement(c, "INSERT INTO resources (seq, res_type, res_id, version, last_updated, deleted, next_seq, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
        using var token = new RawStatement(c, "INSERT INTO idx_token VALUES (?, ?, ?, ?)");
        using var str = new RawStatement(c, "INSERT INTO idx_string VALUES (?, ?, ?, ?)");
        using var reference = new RawStatement(c, "INSERT INTO idx_reference VALUES (?, ?, ?, ?)");
        using var date = new RawStatement(c, "INSERT INTO idx_date VALUES (?, ?, ?, ?)");
        using var number = new RawStatement(c, "INSERT INTO idx_number VALUES (?, ?, ?)");
        using var quantity = new RawStatement(c, "INSERT INTO idx_quantity VALUES (?, ?, ?, ?, ?)");
        using var uri = new RawStatement(c, "INSERT INTO idx_uri VALUES (?, ?, ?)");
        using var compartment = new RawStatement(c, "INSERT INTO compartment VALUES (?, ?, ?)");

        foreach (var row in rows)
        {
            cancellationToken.ThrowIfCancellationRequested();
            resource.Bind(1, row.Seq).Bind(2, row.Type).Bind(3, row.Id).Bind(4, row.Version).Bind(5, row.LastUpdated)
                .Bind(6, row.Deleted ? 1L : 0L).Bind(7, row.NextSeq).BindUtf8Text(8, row.Utf8Json).Execute();
            if (row.Deleted || row.Index is not { } index)
            {
                continue;
            }

            foreach (var e in index.Tokens)
            {
                token.Bind(1, row.Seq).Bind(2, registry.KeyOf(row.Type, e.Param)).Bind(3, e.System).Bind(4, e.Code).Execute();
            }

            foreach (var e in index.Strings)
            {
                str.Bind(1, row.Seq).Bind(2, registry.KeyOf(row.Type, e.Param)).Bind(3, e.Normalized).Bind(4, e.Exact).Execute();
            }

            foreach (var e in index.References)
            {
                reference.Bind(1, row.Seq).Bind(2, registry.KeyOf(row.Type, e.Param)).Bind(3, e.TargetType).Bind(4, e.TargetId).Execute();
            }

            foreach (var e in index.Dates)
            {
                date.Bind(1, row.Seq).Bind(2, registry.KeyOf(row.Type, e.Param)).Bind(3, e.Low).Bind(4, e.High).Execute();
            }

            foreach (var e in index.Numbers)
            {
                number.Bind(1, row.Seq).Bind(2, registry.KeyOf(row.Type, e.Param)).Bind(3, (double)e.Value).Execute();
            }

            foreach (var e in index.Quantities)
            {
                quantity.Bind(1, row.Seq).Bind(2, registry.KeyOf(row.Type, e.Param)).Bind(3, e.System).Bind(4, e.Code).Bind(5, (double)e.Value).Execute();
            }

            foreach (var e in index.Uris)
            {
                uri.Bind(1, row.Seq).Bind(2, registry.KeyOf(row.Type, e.Param)).Bind(3, e.Value).Execute();
            }

            foreach (var patient in index.Compartments)
            {
                compartment.Bind(1, row.Seq).Bind(2, row.Type).Bind(3, patient).Execute();
            }
        }

        return Task.CompletedTask;
    }

    protected override Task SupersedeAsync(DbConnection connection, DbTransaction transaction, IReadOnlyList<(long OldSeq, long NewSeq)> pairs, CancellationToken cancellationToken)
    {
        if (pairs.Count == 0)
        {
            return Task.CompletedTask;
        }

        using var command = new RawStatement((SqliteConnection)connection, "UPDATE resources SET next_seq = ? WHERE seq = ?");
        foreach (var (oldSeq, newSeq) in pairs)
        {
            command.Bind(1, newSeq).Bind(2, oldSeq).Execute();
        }

        return Task.CompletedTask;
    }

    public void Dispose() => DisposeWriterTurn();
}
