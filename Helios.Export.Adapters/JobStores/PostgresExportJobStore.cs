using System.Data.Common;
using Npgsql;

namespace Helios.Export.Adapters.JobStores;

/// <summary>Job state in the shared PostgreSQL database. Concurrent claims of one partition serialize on its row
/// (the loser re-reads it and finds it leased); finishing partitions take the job row lock.</summary>
public sealed class PostgresExportJobStore(NpgsqlDataSource dataSource, TimeProvider timeProvider) : SqlExportJobStore(timeProvider)
{
    private const long MigrationLockKey = 0x48656c696f7345;

    protected override string LockJobSql => "SELECT id FROM export_jobs WHERE id = @j FOR UPDATE";

    protected override string LockCreateSql => "SELECT pg_advisory_xact_lock(4748127590112)";

    protected override string SkipLockedSql => " FOR UPDATE SKIP LOCKED";

    protected override string MigrationLockSql => $"SELECT pg_advisory_xact_lock({MigrationLockKey})";

    protected override async ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken) =>
        await dataSource.OpenConnectionAsync(cancellationToken);
}
