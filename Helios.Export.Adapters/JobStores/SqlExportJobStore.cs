using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Helios.Export.Jobs;
using Helios.Export.Requests;
using Helios.Storage.Indexing;

namespace Helios.Export.Adapters.JobStores;

/// <summary>
/// Job state in SQL, shared by SQLite and PostgreSQL. Times are stored as µs since the epoch. Worker writes carry the
/// lease's fencing token in their WHERE clause, and a claim bumps it, so a stale holder changes nothing.
/// </summary>
public abstract class SqlExportJobStore(TimeProvider timeProvider) : IExportJobStore
{
    internal static readonly JsonSerializerOptions RequestJson = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter() },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private const string JobColumns =
        "id, tenant, owner, status, request_json, request_url, base_url, transaction_time, snapshot_seq, created_at, completed_at, expires_at, error, trace_parent";

    protected abstract ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken);

    /// <summary>Statement run first in a transaction that must not interleave with others on the job row (PostgreSQL:
    /// a row lock; SQLite transactions are already serialized).</summary>
    protected abstract string LockJobSql { get; }

    /// <summary>Statement serializing job creation (the concurrency limits are checked then inserted).</summary>
    protected abstract string LockCreateSql { get; }

    /// <summary>Suffix of the claim's row pick: <c> FOR UPDATE SKIP LOCKED</c> in PostgreSQL, so concurrent claimers
    /// take different partitions instead of queueing on one.</summary>
    protected abstract string SkipLockedSql { get; }

    /// <summary>Statement run first in the migration transaction (PostgreSQL: an advisory lock, so concurrent starts
    /// migrate once).</summary>
    protected abstract string MigrationLockSql { get; }

    public async Task MigrateAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        if (MigrationLockSql.Length > 0)
        {
            await ExecAsync(connection, transaction, MigrationLockSql, [], cancellationToken);
        }

        await ExecAsync(connection, transaction, "CREATE TABLE IF NOT EXISTS export_schema_version (version INTEGER NOT NULL)", [], cancellationToken);
        var current = (int)await ScalarAsync(connection, transaction, "SELECT COALESCE(MAX(version), 0) FROM export_schema_version", [], cancellationToken);
        for (var version = current; version < ExportSchema.Migrations.Count; version++)
        {
            foreach (var statement in ExportSchema.Migrations[version])
            {
                await ExecAsync(connection, transaction, statement, [], cancellationToken);
            }

            await ExecAsync(connection, transaction, "INSERT INTO export_schema_version (version) VALUES (@v)", [("@v", version + 1)], cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    private long Now => FhirDateRange.ToMicros(timeProvider.GetUtcNow());

    public async Task<CreateJobOutcome> CreateJobAsync(ExportJob job, int maxActivePerClient, int maxActivePerTenant, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(job);
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        if (LockCreateSql.Length > 0)
        {
            await ExecAsync(connection, transaction, LockCreateSql, [], cancellationToken);
        }

        var perClient = await ScalarAsync(connection, transaction,
            "SELECT COUNT(*) FROM export_jobs WHERE tenant = @t AND owner = @o AND status IN ('Accepted', 'Running')",
            [("@t", job.Tenant), ("@o", job.Owner)], cancellationToken);
        if (perClient >= maxActivePerClient)
        {
            return CreateJobOutcome.ClientLimitReached;
        }

        var perTenant = await ScalarAsync(connection, transaction,
            "SELECT COUNT(*) FROM export_jobs WHERE tenant = @t AND status IN ('Accepted', 'Running')", [("@t", job.Tenant)], cancellationToken);
        if (perTenant >= maxActivePerTenant)
        {
            return CreateJobOutcome.TenantLimitReached;
        }

        await ExecAsync(connection, transaction, $"""
            INSERT INTO export_jobs ({JobColumns}, enqueued_at)
            VALUES (@id, @t, @o, @s, @req, @url, @base, @tt, @snap, @created, NULL, NULL, NULL, @trace, @created)
            """,
            [("@id", job.Id), ("@t", job.Tenant), ("@o", job.Owner), ("@s", job.Status.ToString()),
             ("@req", JsonSerializer.Serialize(job.Request, RequestJson)), ("@url", job.RequestUrl), ("@base", job.BaseUrl),
             ("@tt", FhirDateRange.ToMicros(job.TransactionTime)), ("@snap", job.SnapshotSeq), ("@created", FhirDateRange.ToMicros(job.CreatedAt)), ("@trace", job.TraceParent ?? string.Empty)],
            cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return CreateJobOutcome.Created;
    }

    public async Task<ExportJob?> GetJobAsync(string jobId, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, $"SELECT {JobColumns} FROM export_jobs WHERE id = @id", [("@id", jobId)]);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return new ExportJob(
            reader.GetString(0), reader.GetString(1), reader.GetString(2), Enum.Parse<ExportJobStatus>(reader.GetString(3)),
            JsonSerializer.Deserialize<ExportRequest>(reader.GetString(4), RequestJson)!,
            reader.GetString(5), reader.GetString(6), FhirDateRange.FromMicros(reader.GetInt64(7)), reader.GetInt64(8),
            FhirDateRange.FromMicros(reader.GetInt64(9)),
            reader.IsDBNull(10) ? null : FhirDateRange.FromMicros(reader.GetInt64(10)),
            reader.IsDBNull(11) ? null : FhirDateRange.FromMicros(reader.GetInt64(11)),
            reader.IsDBNull(12) ? null : reader.GetString(12))
        {
            TraceParent = reader.IsDBNull(13) || reader.GetString(13).Length == 0 ? null : reader.GetString(13),
        };
    }

    public async Task<bool> SavePlanAsync(string jobId, IReadOnlyList<ExportPartitionPlan> partitions, IReadOnlyList<ExportFile> files, TimeSpan outputTtl, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        ArgumentNullException.ThrowIfNull(files);
        var now = Now;
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var moved = await ExecAsync(connection, transaction,
            "UPDATE export_jobs SET status = 'Running', enqueued_at = @now WHERE id = @id AND status = 'Accepted'", [("@id", jobId), ("@now", now)], cancellationToken);
        if (moved == 0)
        {
            return false;
        }

        foreach (var partition in partitions)
        {
            await ExecAsync(connection, transaction, """
                INSERT INTO export_partitions (job_id, partition_no, res_type, after_seq, up_to_seq, estimated_rows, status, attempts,
                    lease_owner, lease_token, lease_expires, enqueued_at, cursor_seq, next_part, exported, last_error, kind)
                VALUES (@j, @p, @t, @a, @u, @e, 'pending', 0, NULL, 0, 0, @now, @a, 0, 0, NULL, @k)
                """,
                [("@j", jobId), ("@p", partition.PartitionNo), ("@t", partition.Type), ("@a", partition.AfterSeq), ("@u", partition.UpToSeq),
                 ("@e", partition.EstimatedRows), ("@now", now), ("@k", partition.Kind)], cancellationToken);
        }

        foreach (var file in files)
        {
            await InsertFileAsync(connection, transaction, file, now, cancellationToken);
        }

        if (partitions.Count == 0)
        {
            await ExecAsync(connection, transaction,
                "UPDATE export_jobs SET status = 'Completed', completed_at = @now, expires_at = @exp WHERE id = @id",
                [("@id", jobId), ("@now", now), ("@exp", now + ToMicros(outputTtl))], cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return true;
    }

    public async Task<PartitionLease?> ClaimPartitionAsync(string jobId, int? partitionNo, string workerId, TimeSpan leaseDuration, int maxAttempts, CancellationToken cancellationToken)
    {
        var now = Now;
        const string Claimable = "job_id = @j AND attempts < @max AND (status = 'pending' AND retry_at <= @now OR (status = 'running' AND lease_expires < @now))";
        var target = partitionNo is null
            ? $"partition_no = (SELECT partition_no FROM export_partitions WHERE {Claimable} ORDER BY attempts, partition_no LIMIT 1{SkipLockedSql})"
            : "partition_no = @p";
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, $"""
            UPDATE export_partitions
            SET status = 'running', lease_owner = @w, lease_token = lease_token + 1, lease_expires = @exp, heartbeat_at = @now, attempts = attempts + 1
            WHERE {target} AND {Claimable}
              AND EXISTS (SELECT 1 FROM export_jobs WHERE id = @j AND status = 'Running')
            RETURNING partition_no, lease_token, res_type, after_seq, up_to_seq, cursor_seq, next_part, exported, attempts, kind
            """,
            [("@w", workerId), ("@exp", now + ToMicros(leaseDuration)), ("@now", now), ("@j", jobId), ("@p", partitionNo ?? -1), ("@max", maxAttempts)]);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return new PartitionLease(jobId, reader.GetInt32(0), workerId, reader.GetInt64(1), reader.GetString(2), reader.GetInt64(3), reader.GetInt64(4),
            reader.GetInt64(5), reader.GetInt32(6), reader.GetInt64(7), reader.GetInt32(8))
        {
            Kind = reader.GetString(9),
        };
    }

    private const string LeaseGuard =
        "job_id = @j AND partition_no = @p AND lease_token = @tok AND lease_owner = @w AND status = 'running' AND EXISTS (SELECT 1 FROM export_jobs WHERE id = @j AND status = 'Running')";

    private static (string, object?)[] LeaseParameters(PartitionLease lease) =>
        [("@j", lease.JobId), ("@p", lease.PartitionNo), ("@tok", lease.Token), ("@w", lease.WorkerId)];

    public async Task<bool> RenewLeaseAsync(PartitionLease lease, TimeSpan leaseDuration, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(lease);
        var now = Now;
        await using var connection = await OpenAsync(cancellationToken);
        return await ExecAsync(connection, null, $"UPDATE export_partitions SET lease_expires = @exp, heartbeat_at = @now WHERE {LeaseGuard}",
            [.. LeaseParameters(lease), ("@exp", now + ToMicros(leaseDuration)), ("@now", now)], cancellationToken) == 1;
    }

    public async Task<bool> CommitPartAsync(PartitionLease lease, ExportFile file, long cursorSeq, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(lease);
        ArgumentNullException.ThrowIfNull(file);
        var now = Now;
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var moved = await ExecAsync(connection, transaction, $"""
            UPDATE export_partitions SET cursor_seq = @c, next_part = next_part + 1, exported = exported + @n, heartbeat_at = @now
            WHERE {LeaseGuard} AND next_part = @part
            """,
            [.. LeaseParameters(lease), ("@c", cursorSeq), ("@n", file.ResourceCount), ("@now", now), ("@part", file.PartNo)], cancellationToken);
        if (moved != 1)
        {
            return false;
        }

        await InsertFileAsync(connection, transaction, file, now, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return true;
    }

    public async Task<PartitionCompletion> CompletePartitionAsync(PartitionLease lease, TimeSpan outputTtl, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(lease);
        var now = Now;
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        // Serialize finishing partitions of one job, so the last one always sees the others done.
        await ExecAsync(connection, transaction, LockJobSql, [("@j", lease.JobId)], cancellationToken);
        var moved = await ExecAsync(connection, transaction,
            $"UPDATE export_partitions SET status = 'done', lease_owner = NULL, lease_expires = 0, heartbeat_at = @now WHERE {LeaseGuard}",
            [.. LeaseParameters(lease), ("@now", now)], cancellationToken);
        if (moved != 1)
        {
            return PartitionCompletion.Refused;
        }

        var completed = await ExecAsync(connection, transaction, """
            UPDATE export_jobs SET status = 'Completed', completed_at = @now, expires_at = @exp
            WHERE id = @j AND status = 'Running' AND NOT EXISTS (SELECT 1 FROM export_partitions WHERE job_id = @j AND status <> 'done')
            """,
            [("@j", lease.JobId), ("@now", now), ("@exp", now + ToMicros(outputTtl))], cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return completed == 1 ? PartitionCompletion.JobCompleted : PartitionCompletion.Done;
    }

    public async Task ReleasePartitionAsync(PartitionLease lease, string error, TimeSpan retryAfter, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(lease);
        await using var connection = await OpenAsync(cancellationToken);
        await ExecAsync(connection, null,
            "UPDATE export_partitions SET status = 'pending', lease_owner = NULL, lease_expires = 0, retry_at = @r, last_error = @e WHERE job_id = @j AND partition_no = @p AND lease_token = @tok AND lease_owner = @w AND status = 'running'",
            [.. LeaseParameters(lease), ("@e", error), ("@r", retryAfter > TimeSpan.Zero ? Now + ToMicros(retryAfter) : 0L)], cancellationToken);
    }

    public async Task<DateTimeOffset?> GetNextRetryAsync(string jobId, int maxAttempts, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, """
            SELECT MIN(p.retry_at) FROM export_partitions p JOIN export_jobs j ON j.id = p.job_id AND j.status = 'Running'
            WHERE p.job_id = @j AND p.status = 'pending' AND p.attempts < @max AND p.retry_at > 0
            """, [("@j", jobId), ("@max", maxAttempts)]);
        var value = await command.ExecuteScalarAsync(cancellationToken);
        return value is null or DBNull ? null : FhirDateRange.FromMicros(Convert.ToInt64(value, CultureInfo.InvariantCulture));
    }

    public async Task FailJobAsync(string jobId, string error, TimeSpan outputTtl, CancellationToken cancellationToken)
    {
        var now = Now;
        await using var connection = await OpenAsync(cancellationToken);
        await ExecAsync(connection, null,
            "UPDATE export_jobs SET status = 'Failed', error = @e, completed_at = @now, expires_at = @exp WHERE id = @j AND status IN ('Accepted', 'Running')",
            [("@j", jobId), ("@e", error), ("@now", now), ("@exp", now + ToMicros(outputTtl))], cancellationToken);
    }

    public async Task<bool> CancelJobAsync(string jobId, CancellationToken cancellationToken)
    {
        var now = Now;
        await using var connection = await OpenAsync(cancellationToken);
        return await ExecAsync(connection, null,
            "UPDATE export_jobs SET status = 'Cancelled', completed_at = @now, expires_at = @now WHERE id = @j AND status <> 'Cancelled'",
            [("@j", jobId), ("@now", now)], cancellationToken) == 1;
    }

    public async Task<bool> TryRecordPollAsync(string jobId, TimeSpan minInterval, CancellationToken cancellationToken)
    {
        var now = Now;
        await using var connection = await OpenAsync(cancellationToken);
        // One conditional UPDATE: two Apis answering polls of the same job agree on who was too early.
        return await ExecAsync(connection, null,
            "UPDATE export_jobs SET last_polled_at = @now WHERE id = @j AND (last_polled_at IS NULL OR last_polled_at <= @earliest)",
            [("@j", jobId), ("@now", now), ("@earliest", now - ToMicros(minInterval))], cancellationToken) == 1;
    }

    public async Task<IReadOnlyList<ExportFile>> GetFilesAsync(string jobId, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, $"""
            SELECT {FileColumns} FROM export_files
            WHERE job_id = @j ORDER BY kind, res_type, partition_no, part_no
            """, [("@j", jobId)]);
        var files = new List<ExportFile>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            files.Add(ReadFile(jobId, reader));
        }

        return files;
    }

    public async Task<ExportFile?> GetFileAsync(string jobId, string fileName, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, $"""
            SELECT {FileColumns} FROM export_files WHERE job_id = @j AND file_name = @f
            """, [("@j", jobId), ("@f", fileName)]);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? ReadFile(jobId, reader) : null;
    }

    private const string FileColumns = "file_name, kind, res_type, partition_no, part_no, resource_count, byte_count, manifest_page";

    private static ExportFile ReadFile(string jobId, DbDataReader reader) =>
        new(jobId, reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt32(3), reader.GetInt32(4), reader.GetInt64(5), reader.GetInt64(6))
        {
            ManifestPage = reader.IsDBNull(7) ? null : reader.GetInt32(7),
        };

    public async Task<bool> EnsureManifestPageAsync(string jobId, int page, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(page);
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        // Serialize page creation of one job (two Apis answering two polls must not both create page n).
        await ExecAsync(connection, transaction, LockJobSql, [("@j", jobId)], cancellationToken);
        var last = await ScalarAsync(connection, transaction, "SELECT COALESCE(MAX(manifest_page), 0) FROM export_files WHERE job_id = @j", [("@j", jobId)], cancellationToken);
        if (page <= last)
        {
            return true;
        }

        if (page > last + 1)
        {
            return false;
        }

        var added = await ExecAsync(connection, transaction,
            "UPDATE export_files SET manifest_page = @p WHERE job_id = @j AND manifest_page IS NULL AND kind IN ('output', 'deleted')",
            [("@j", jobId), ("@p", page)], cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return added > 0;
    }

    public async Task<ExportProgress> GetProgressAsync(string jobId, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, """
            SELECT COALESCE(SUM(estimated_rows), 0),
                   COALESCE(SUM(CASE WHEN status = 'done' THEN estimated_rows WHEN exported < estimated_rows THEN exported ELSE estimated_rows END), 0),
                   COUNT(*), COALESCE(SUM(CASE WHEN status = 'done' THEN 1 ELSE 0 END), 0)
            FROM export_partitions WHERE job_id = @j
            """, [("@j", jobId)]);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new ExportProgress(Convert.ToInt64(reader.GetValue(0), CultureInfo.InvariantCulture), Convert.ToInt64(reader.GetValue(1), CultureInfo.InvariantCulture),
            Convert.ToInt32(reader.GetValue(2), CultureInfo.InvariantCulture), Convert.ToInt32(reader.GetValue(3), CultureInfo.InvariantCulture));
    }

    public async Task<ExportActivity> GetActivityAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, """
            SELECT (SELECT COUNT(*) FROM export_jobs WHERE status IN ('Accepted', 'Running')),
                   (SELECT COUNT(*) FROM export_partitions p JOIN export_jobs j ON j.id = p.job_id AND j.status = 'Running'
                    WHERE p.status = 'pending' OR (p.status = 'running' AND p.lease_expires < @now)),
                   (SELECT COUNT(*) FROM export_partitions WHERE status = 'running' AND lease_expires >= @now)
            """, [("@now", Now)]);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new ExportActivity(Convert.ToInt64(reader.GetValue(0), CultureInfo.InvariantCulture), Convert.ToInt64(reader.GetValue(1), CultureInfo.InvariantCulture),
            Convert.ToInt64(reader.GetValue(2), CultureInfo.InvariantCulture));
    }

    public async Task<IReadOnlyList<ExportWorkItem>> TakeWorkToEnqueueAsync(DateTimeOffset staleBefore, CancellationToken cancellationToken)
    {
        var now = Now;
        var stale = FhirDateRange.ToMicros(staleBefore);
        var items = new List<ExportWorkItem>();
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var plans = Command(connection, transaction,
            "SELECT id FROM export_jobs WHERE status = 'Accepted' AND enqueued_at < @stale", [("@stale", stale)]))
        await using (var reader = await plans.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                items.Add(new ExportWorkItem(reader.GetString(0), Plan: true));
            }
        }

        await using (var runs = Command(connection, transaction, """
            SELECT j.id FROM export_jobs j
            WHERE j.status = 'Running'
              AND EXISTS (SELECT 1 FROM export_partitions p WHERE p.job_id = j.id AND (p.status = 'pending' OR (p.status = 'running' AND p.lease_expires < @now)))
              AND (EXISTS (SELECT 1 FROM export_partitions p WHERE p.job_id = j.id AND p.status = 'running' AND p.lease_expires < @now AND p.lease_expires > j.enqueued_at)
                   OR EXISTS (SELECT 1 FROM export_partitions p WHERE p.job_id = j.id AND p.status = 'pending' AND p.retry_at <= @now AND p.retry_at > j.enqueued_at)
                   OR (j.enqueued_at < @stale AND NOT EXISTS (SELECT 1 FROM export_partitions p WHERE p.job_id = j.id AND p.status = 'running' AND p.lease_expires >= @now)))
            """, [("@stale", stale), ("@now", now)]))
        await using (var reader = await runs.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                items.Add(new ExportWorkItem(reader.GetString(0), Plan: false));
            }
        }

        foreach (var item in items)
        {
            await ExecAsync(connection, transaction, "UPDATE export_jobs SET enqueued_at = @now WHERE id = @j", [("@now", now), ("@j", item.JobId)], cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return items;
    }

    public async Task ResetAfterRestartAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await ExecAsync(connection, transaction, "UPDATE export_jobs SET enqueued_at = 0 WHERE status IN ('Accepted', 'Running')", [], cancellationToken);
        await ExecAsync(connection, transaction, "UPDATE export_partitions SET lease_expires = 0 WHERE status = 'running'", [], cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    public async Task<IReadOnlyList<(string JobId, int PartitionNo, string? LastError)>> FindAbandonedAsync(int maxAttempts, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, """
            SELECT p.job_id, p.partition_no, p.last_error FROM export_partitions p JOIN export_jobs j ON j.id = p.job_id AND j.status = 'Running'
            WHERE p.attempts >= @max AND (p.status = 'pending' OR (p.status = 'running' AND p.lease_expires < @now))
            """, [("@max", maxAttempts), ("@now", Now)]);
        var result = new List<(string, int, string?)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            result.Add((reader.GetString(0), reader.GetInt32(1), reader.IsDBNull(2) ? null : reader.GetString(2)));
        }

        return result;
    }

    public async Task<IReadOnlyList<string>> FindDisposableAsync(int limit, CancellationToken cancellationToken)
    {
        var now = Now;
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = Command(connection, null, $"""
            SELECT id FROM export_jobs j
            WHERE (j.status = 'Cancelled' AND NOT EXISTS (SELECT 1 FROM export_partitions p WHERE p.job_id = j.id AND p.status = 'running' AND p.lease_expires >= @now))
               OR (j.status IN ('Completed', 'Failed') AND j.expires_at < @now)
            ORDER BY j.created_at LIMIT {limit.ToString(CultureInfo.InvariantCulture)}
            """, [("@now", now)]);
        var ids = new List<string>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            ids.Add(reader.GetString(0));
        }

        return ids;
    }

    public async Task DeleteJobAsync(string jobId, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await ExecAsync(connection, transaction, "DELETE FROM export_files WHERE job_id = @j", [("@j", jobId)], cancellationToken);
        await ExecAsync(connection, transaction, "DELETE FROM export_partitions WHERE job_id = @j", [("@j", jobId)], cancellationToken);
        await ExecAsync(connection, transaction, "DELETE FROM export_jobs WHERE id = @j", [("@j", jobId)], cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    private static async Task InsertFileAsync(DbConnection connection, DbTransaction transaction, ExportFile file, long now, CancellationToken cancellationToken) =>
        await ExecAsync(connection, transaction, """
            INSERT INTO export_files (job_id, file_name, kind, res_type, partition_no, part_no, resource_count, byte_count, created_at)
            VALUES (@j, @f, @k, @t, @p, @n, @c, @b, @now)
            """,
            [("@j", file.JobId), ("@f", file.FileName), ("@k", file.Kind), ("@t", file.Type), ("@p", file.PartitionNo), ("@n", file.PartNo),
             ("@c", file.ResourceCount), ("@b", file.ByteCount), ("@now", now)], cancellationToken);

    private static long ToMicros(TimeSpan span) => span.Ticks / 10;

    protected static DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql, IEnumerable<(string Name, object? Value)> parameters)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = name;
            parameter.Value = value ?? DBNull.Value;
            command.Parameters.Add(parameter);
        }

        return command;
    }

    protected static async Task<int> ExecAsync(DbConnection connection, DbTransaction? transaction, string sql, IEnumerable<(string Name, object? Value)> parameters, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<long> ScalarAsync(DbConnection connection, DbTransaction? transaction, string sql, IEnumerable<(string Name, object? Value)> parameters, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture);
    }
}
