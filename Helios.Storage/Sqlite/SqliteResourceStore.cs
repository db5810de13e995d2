using System.Data.Common;
using Helios.Storage.Indexing;
using Helios.Storage.Sql;
using Microsoft.Data.Sqlite;

namespace Helios.Storage.Sqlite;

/// <summary>The embedded store: one SQLite database file (WAL mode). One writer at a time, readers concurrent.</summary>
public sealed class SqliteResourceStore : SqlResourceStore, ISchemaMigrator, IDisposable
{
    private readonly string _connectionString;
    private readonly SemaphoreSlim _writer = new(1, 1);

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
    public async Task MigrateAsync(CancellationToken cancellationToken)
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

        var migrations = Schema.Migrations(postgres: false);
        for (var v = (int)current; v < migrations.Count; v++)
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

        await transaction.CommitAsync(cancellationToken);
        await EnsureSecondaryIndexesAsync(cancellationToken);
    }

    protected override bool IsPostgres => false;

    protected override async Task ExecuteDdlAsync(IReadOnlyList<string> statements, CancellationToken cancellationToken)
    {
        await using var connection = (SqliteConnection)await OpenAsync(cancellationToken);
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

    protected override async ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var pragma = connection.CreateCommand();
        pragma.CommandText = "PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000; PRAGMA cache_size=-262144; PRAGMA temp_store=MEMORY";
        await pragma.ExecuteNonQueryAsync(cancellationToken);
        return connection;
    }

    protected override async ValueTask<DbTransaction> BeginWriteAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        await _writer.WaitAsync(cancellationToken);
        try
        {
            // Microsoft.Data.Sqlite starts IMMEDIATE transactions unless asked for deferred ones.
            return await connection.BeginTransactionAsync(cancellationToken);
        }
        catch
        {
            _writer.Release();
            throw;
        }
    }

    protected override void EndWrite() => _writer.Release();

    protected override async Task<(long LastSeq, long LastTs)> ReadClockAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "SELECT last_seq, last_ts FROM store_state WHERE id = 1";
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    protected override async Task<Dictionary<(string Type, string Id), CurrentVersion>> LookupCurrentAsync(
        DbConnection connection, DbTransaction transaction, IReadOnlyCollection<(string Type, string Id)> keys, CancellationToken cancellationToken)
    {
        var result = new Dictionary<(string, string), CurrentVersion>(keys.Count);
        await using var command = (SqliteCommand)connection.CreateCommand();
        command.Transaction = (SqliteTransaction)transaction;
        command.CommandText = "SELECT seq, version, deleted FROM resources WHERE res_type = @t AND res_id = @i AND next_seq IS NULL";
        var t = command.Parameters.Add("@t", SqliteType.Text);
        var i = command.Parameters.Add("@i", SqliteType.Text);
        command.Prepare();
        foreach (var key in keys)
        {
            t.Value = key.Type;
            i.Value = key.Id;
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            if (await reader.ReadAsync(cancellationToken))
            {
                result[key] = new CurrentVersion(reader.GetInt64(0), reader.GetInt32(1), reader.GetInt32(2) != 0);
            }
        }

        return result;
    }

    protected override Task InsertRowsAsync(DbConnection connection, DbTransaction transaction, IReadOnlyList<NewVersion> rows, CancellationToken cancellationToken)
    {
        var c = (SqliteConnection)connection;
        var tx = (SqliteTransaction)transaction;
        using var resource = Prepare(c, tx, "INSERT INTO resources (seq, res_type, res_id, version, last_updated, deleted, next_seq, json) VALUES (@a, @b, @c, @d, @e, @f, @g, @h)", 8);
        using var token = Prepare(c, tx, "INSERT INTO idx_token VALUES (@a, @b, @c, @d, @e)", 5);
        using var str = Prepare(c, tx, "INSERT INTO idx_string VALUES (@a, @b, @c, @d, @e)", 5);
        using var reference = Prepare(c, tx, "INSERT INTO idx_reference VALUES (@a, @b, @c, @d, @e)", 5);
        using var date = Prepare(c, tx, "INSERT INTO idx_date VALUES (@a, @b, @c, @d, @e)", 5);
        using var number = Prepare(c, tx, "INSERT INTO idx_number VALUES (@a, @b, @c, @d)", 4);
        using var quantity = Prepare(c, tx, "INSERT INTO idx_quantity VALUES (@a, @b, @c, @d, @e, @f)", 6);
        using var uri = Prepare(c, tx, "INSERT INTO idx_uri VALUES (@a, @b, @c, @d)", 4);
        using var compartment = Prepare(c, tx, "INSERT INTO compartment VALUES (@a, @b, @c)", 3);

        foreach (var row in rows)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Run(resource, row.Seq, row.Type, row.Id, row.Version, row.LastUpdated, row.Deleted ? 1 : 0, row.NextSeq, row.Json);
            if (row.Deleted || row.Index is not { } index)
            {
                continue;
            }

            foreach (var e in index.Tokens)
            {
                Run(token, row.Seq, row.Type, e.Param, e.System, e.Code);
            }

            foreach (var e in index.Strings)
            {
                Run(str, row.Seq, row.Type, e.Param, e.Normalized, e.Exact);
            }

            foreach (var e in index.References)
            {
                Run(reference, row.Seq, row.Type, e.Param, e.TargetType, e.TargetId);
            }

            foreach (var e in index.Dates)
            {
                Run(date, row.Seq, row.Type, e.Param, e.Low, e.High);
            }

            foreach (var e in index.Numbers)
            {
                Run(number, row.Seq, row.Type, e.Param, (double)e.Value);
            }

            foreach (var e in index.Quantities)
            {
                Run(quantity, row.Seq, row.Type, e.Param, e.System, e.Code, (double)e.Value);
            }

            foreach (var e in index.Uris)
            {
                Run(uri, row.Seq, row.Type, e.Param, e.Value);
            }

            foreach (var patient in index.Compartments)
            {
                Run(compartment, row.Seq, row.Type, patient);
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

        using var command = Prepare((SqliteConnection)connection, (SqliteTransaction)transaction, "UPDATE resources SET next_seq = @a WHERE seq = @b", 2);
        foreach (var (oldSeq, newSeq) in pairs)
        {
            Run(command, newSeq, oldSeq);
        }

        return Task.CompletedTask;
    }

    private static SqliteCommand Prepare(SqliteConnection connection, SqliteTransaction transaction, string sql, int parameterCount)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        for (var i = 0; i < parameterCount; i++)
        {
            command.Parameters.Add(new SqliteParameter("@" + (char)('a' + i), null));
        }

        command.Prepare();
        return command;
    }

    private static void Run(SqliteCommand command, params object?[] values)
    {
        for (var i = 0; i < values.Length; i++)
        {
            command.Parameters[i].Value = values[i] ?? DBNull.Value;
        }

        command.ExecuteNonQuery();
    }

    public void Dispose() => _writer.Dispose();
}
