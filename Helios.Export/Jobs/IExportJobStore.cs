namespace Helios.Export.Jobs;

/// <summary>
/// Export job state (jobs, partitions with leases, committed files). Every write a worker makes is guarded by its
/// lease's fencing token; SQLite in the embedded topology, PostgreSQL in postgres-s3.
/// </summary>
public interface IExportJobStore
{
    Task MigrateAsync(CancellationToken cancellationToken);

    /// <summary>Inserts an accepted job unless the owner or tenant already has the maximum number of active exports
    /// (checked and inserted atomically).</summary>
    Task<CreateJobOutcome> CreateJobAsync(ExportJob job, int maxActivePerClient, int maxActivePerTenant, CancellationToken cancellationToken);

    Task<ExportJob?> GetJobAsync(string jobId, CancellationToken cancellationToken);

    /// <summary>Moves an accepted job to running with its partitions and any warning files, once: false when another
    /// planner got there first or the job is no longer accepted. A plan without partitions completes the job.</summary>
    Task<bool> SavePlanAsync(string jobId, IReadOnlyList<ExportPartitionPlan> partitions, IReadOnlyList<ExportFile> files, TimeSpan outputTtl, CancellationToken cancellationToken);

    /// <summary>Claims a partition that is pending or whose lease has expired (the given one, or when null any of the
    /// export's, fewest attempts first), bumping the fencing token; null when there is none to claim, its export is not
    /// running, or it has used up its attempts.</summary>
    Task<PartitionLease?> ClaimPartitionAsync(string jobId, int? partitionNo, string workerId, TimeSpan leaseDuration, int maxAttempts, CancellationToken cancellationToken);

    /// <summary>Extends the lease; false when it is stale or the export is no longer running (cancelled, failed).</summary>
    Task<bool> RenewLeaseAsync(PartitionLease lease, TimeSpan leaseDuration, CancellationToken cancellationToken);

    /// <summary>Records a published part and moves the partition's cursor past it, in one transaction guarded by the
    /// fencing token; false (nothing written) when the lease is stale or the export is no longer running.</summary>
    Task<bool> CommitPartAsync(PartitionLease lease, ExportFile file, long cursorSeq, CancellationToken cancellationToken);

    /// <summary>Marks the partition done (fenced); the last one completes the job.</summary>
    Task<PartitionCompletion> CompletePartitionAsync(PartitionLease lease, TimeSpan outputTtl, CancellationToken cancellationToken);

    /// <summary>Gives the partition back (after a failure, a shutdown or a cancel) so it can be claimed again once
    /// <paramref name="retryAfter"/> has passed (zero: at once); fenced by the token, but allowed whatever the job's
    /// state so a cancelled job's leases end promptly.</summary>
    Task ReleasePartitionAsync(PartitionLease lease, string error, TimeSpan retryAfter, CancellationToken cancellationToken);

    /// <summary>When the earliest partition of the running job that waits out a retry delay (released after a failure,
    /// attempts left) becomes claimable; null when none waits.</summary>
    Task<DateTimeOffset?> GetNextRetryAsync(string jobId, int maxAttempts, CancellationToken cancellationToken);

    /// <summary>Ends a running or accepted job as failed.</summary>
    Task FailJobAsync(string jobId, string error, TimeSpan outputTtl, CancellationToken cancellationToken);

    /// <summary>Marks an accepted, running or finished job cancelled; false when unknown or already cancelled.</summary>
    Task<bool> CancelJobAsync(string jobId, CancellationToken cancellationToken);

    /// <summary>Records a status poll of a job unless the previous one was less than <paramref name="minInterval"/>
    /// ago (then false, nothing recorded): the Bulk Data IG lets a server answer 429 to a client polling faster
    /// than the Retry-After it was given.</summary>
    Task<bool> TryRecordPollAsync(string jobId, TimeSpan minInterval, CancellationToken cancellationToken);

    Task<IReadOnlyList<ExportFile>> GetFilesAsync(string jobId, CancellationToken cancellationToken);

    /// <summary>
    /// Makes sure manifest page <paramref name="page"/> (from 1) of a job exists: an existing page is left as it is (a
    /// served page never changes); the page after the last one is created from the output and deleted files committed
    /// and not yet on a page, when there are any. False when the page does not exist (nothing new to put on it, or a
    /// page further on was asked for).
    /// </summary>
    Task<bool> EnsureManifestPageAsync(string jobId, int page, CancellationToken cancellationToken);

    Task<ExportFile?> GetFileAsync(string jobId, string fileName, CancellationToken cancellationToken);

    Task<ExportProgress> GetProgressAsync(string jobId, CancellationToken cancellationToken);

    /// <summary>The deployment's export activity now (for the gauges, and as the store's health probe).</summary>
    Task<ExportActivity> GetActivityAsync(CancellationToken cancellationToken);

    /// <summary>Exports that need a (new) Hangfire job: accepted ones not enqueued since <paramref name="staleBefore"/>
    /// (to plan), and running ones with claimable partitions where a lease expired since the last enqueue, a failed
    /// partition's backoff ended since the last enqueue, or nothing holds a live lease and the last enqueue is older
    /// than <paramref name="staleBefore"/> (to run).
    /// Marks them enqueued now.</summary>
    Task<IReadOnlyList<ExportWorkItem>> TakeWorkToEnqueueAsync(DateTimeOffset staleBefore, CancellationToken cancellationToken);

    /// <summary>After a restart of a single-process (embedded) deployment: every lease was held by the dead process, so
    /// expire them all and mark all pending work as needing a Hangfire job.</summary>
    Task ResetAfterRestartAsync(CancellationToken cancellationToken);

    /// <summary>Running jobs with a partition that used up its attempts (to be failed as abandoned).</summary>
    Task<IReadOnlyList<(string JobId, int PartitionNo, string? LastError)>> FindAbandonedAsync(int maxAttempts, CancellationToken cancellationToken);

    /// <summary>Jobs to delete: cancelled ones with no live lease, and finished ones past their expiry.</summary>
    Task<IReadOnlyList<string>> FindDisposableAsync(int limit, CancellationToken cancellationToken);

    /// <summary>Deletes a job's rows (its files must already be gone).</summary>
    Task DeleteJobAsync(string jobId, CancellationToken cancellationToken);
}
