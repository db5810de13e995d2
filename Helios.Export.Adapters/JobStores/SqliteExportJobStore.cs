using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace Helios.Export.Adapters.JobStores;

/// <summary>Embedded job state, in the same SQLite file as the resources (WAL; every transaction is IMMEDIATE, so
/// transactions are serialized and the fencing checks need no row locks).</summary>
public sealed class SqliteExportJobStore(string databasePath, TimeProvider timeProvider) : SqlExportJobStore(timeProvider)
{
    private readonly string _connectionString = new SqliteConnectionStringBuilder
    {
        DataSource = databasePath,
        Mode = SqliteOpenMode.ReadWriteCreate,
        Pooling = true,
        DefaultTimeout = 30,
    }.ToString();

    protected override string LockJobSql => "SELECT 1 WHERE @j IS NOT NULL";

    protected override string LockCreateSql => string.Empty;

    protected override string SkipLockedSql => string.Empty;

    protected override string MigrationLockSql => string.Empty;

    protected override async ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var pragma = connection.CreateCommand();
        pragma.CommandText = "PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000";
        await pragma.ExecuteNonQueryAsync(cancellationToken);
        return connection;
    }
}
