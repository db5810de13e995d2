using System.Diagnostics;
using Helios.Export.Diagnostics;
using Helios.Export.Files;
using Helios.Export.Jobs;
using Helios.Storage.Snapshots;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Helios.Export.Engine;

/// <summary>
/// Runs an export's partitions, one at a time, each under a lease: streams the snapshot's rows in key order as stored JSON text into NDJSON parts
/// bounded in bytes, publishes each part atomically, then commits its metadata and the cursor under the fencing
/// token. A heartbeat renews the lease; when it cannot (the lease was taken over, or the export was cancelled) the
/// run stops. A reclaimed partition resumes after its last committed part.
/// </summary>
public sealed partial class ExportPartitionRunner(
    IExportJobStore jobs,
    IExportSource source,
    IExportFileStore files,
    ExportRanges ranges,
    ExportWorkerIdentity identity,
    TimeProvider timeProvider,
    IOptions<ExportOptions> options,
    ILogger<ExportPartitionRunner> logger)
{
    /// <summary>Claims and runs the export's partitions one after another until none is left to claim.</summary>
    public async Task RunAsync(string jobId, CancellationToken cancellationToken)
    {
        var job = await jobs.GetJobAsync(jobId, cancellationToken);
        if (job is not { Status: ExportJobStatus.Running })
        {
            return;
        }

        var settings = options.Value;
        using var scope = ExportTelemetry.BeginJobScope(logger, jobId);
        while (true)
        {
            while (await jobs.ClaimPartitionAsync(jobId, null, identity.Id, settings.LeaseDuration, settings.MaxAttempts, cancellationToken) is { } lease)
            {
                await RunPartitionAsync(job, lease, cancellationToken);
            }

            // Nothing claimable now. A partition that failed waits out its backoff. A short one (up to a supervisor
            // pass) is waited for here; a longer one ends the run, and the supervisor enqueues a new run when the
            // retry falls due, so a failing export does not hold this worker thread (and every other run of it
            // theirs) while other exports queue.
            if (await jobs.GetNextRetryAsync(jobId, settings.MaxAttempts, cancellationToken) is not { } retryAt)
            {
                break;
            }

            var wait = retryAt - timeProvider.GetUtcNow();
            if (wait > settings.SupervisorInterval)
            {
                LogRetryLater(logger, jobId, wait.TotalSeconds);
                return;
            }

            LogWaitingForRetry(logger, jobId, Math.Max(0, wait.TotalSeconds));
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, timeProvider, cancellationToken);
            }
        }

        LogNothingToClaim(logger, jobId);
    }

    /// <summary>The wait before a failed partition's next attempt: <see cref="ExportOptions.RetryBackoff"/> doubled per
    /// attempt already made, capped at <see cref="ExportOptions.MaxRetryBackoff"/>.</summary>
    public static TimeSpan RetryDelay(ExportOptions settings, int attempt)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var factor = Math.Pow(2, Math.Clamp(attempt - 1, 0, 30));
        var delay = TimeSpan.FromTicks((long)Math.Min(settings.RetryBackoff.Ticks * factor, settings.MaxRetryBackoff.Ticks));
        return delay < TimeSpan.Zero ? TimeSpan.Zero : delay;
    }

    private async Task RunPartitionAsync(ExportJob job, PartitionLease lease, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var jobId = job.Id;
        var partitionNo = lease.PartitionNo;
        using var activity = ExportTelemetry.StartStage("helios.export.partition", job);
        activity?.SetTag("helios.export.partition", partitionNo);
        activity?.SetTag("helios.export.resource_type", lease.Type);
        activity?.SetTag("helios.export.attempt", lease.Attempt);
        activity?.SetTag("helios.export.worker", identity.Id);
        if (lease.Attempt > 1)
        {
            ExportTelemetry.PartitionsReclaimed.Add(1, new KeyValuePair<string, object?>("resource_type", lease.Type));
        }

        ExportTelemetry.PartitionsRunning.Add(1);
        var started = Stopwatch.GetTimestamp();

        using var run = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var leaseLost = false;
        var heartbeat = HeartbeatAsync(lease, () => { leaseLost = true; run.Cancel(); }, run.Token);
        try
        {
            var exported = await ExportRowsAsync(job, lease, run.Token);
            var completion = await jobs.CompletePartitionAsync(lease, settings.OutputTtl, cancellationToken);
            if (completion == PartitionCompletion.Refused)
            {
                leaseLost = true;
                throw new OperationCanceledException("The lease was lost before the partition could be marked done.");
            }

            ExportTelemetry.PartitionDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds,
                new KeyValuePair<string, object?>("resource_type", lease.Type));
            LogPartitionDone(logger, jobId, partitionNo, lease.Type, exported);
            if (completion == PartitionCompletion.JobCompleted)
            {
                await OnJobCompletedAsync(job, cancellationToken);
            }
        }
        catch (OperationCanceledException ex) when (leaseLost || ex is LeaseLostException)
        {
            ExportTelemetry.LeasesLost.Add(1);
            activity?.SetTag("helios.export.lease_lost", true);
            LogLeaseLost(logger, jobId, partitionNo, lease.Token);
            await TryReleaseAsync(lease, "lease lost or export ended", TimeSpan.Zero);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            LogShutdown(logger, jobId, partitionNo);
            await TryReleaseAsync(lease, "worker shut down", TimeSpan.Zero);
            throw;
        }
        catch (Exception ex)
        {
            if (await HasEndedAsync(jobId))
            {
                // Cancelled (or failed elsewhere) while this partition ran: its files were deleted under it, which is
                // what failed here. Nothing to retry; the work is discarded as with a lost lease.
                LogEndedUnderneath(logger, jobId, partitionNo, ex.GetType().Name);
                await TryReleaseAsync(lease, "export ended", TimeSpan.Zero);
                return;
            }

            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            var retryAfter = RetryDelay(settings, lease.Attempt);
            LogPartitionFailed(logger, ex, jobId, partitionNo, lease.Attempt, retryAfter.TotalSeconds);
            ExportTelemetry.PartitionsFailed.Add(1, new KeyValuePair<string, object?>("resource_type", lease.Type));
            await TryReleaseAsync(lease, Describe(ex), retryAfter);
        }
        finally
        {
            ExportTelemetry.PartitionsRunning.Add(-1);
            await run.CancelAsync();
            await heartbeat;
        }
    }

    private async Task<long> ExportRowsAsync(ExportJob job, PartitionLease lease, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var cursor = lease.CursorSeq;
        var partNo = lease.NextPart;
        long exported = 0;
        IExportPartWriter? writer = null;
        ISnapshotSink? sink = null;
        string? fileName = null;
        long inPart = 0;
        // _elements: each line projected by its own type (patient blocks mix types; headers pass through).
        var projected = lease.Kind != ExportFileKinds.Deleted && job.Request.Elements is not null;
        var blocks = lease.Kind == ExportFileKinds.PatientBlocks;
        var problems = new List<string>();
        try
        {
            while (true)
            {
                if (settings.DelayPerBatch > TimeSpan.Zero)
                {
                    await Task.Delay(settings.DelayPerBatch, timeProvider, cancellationToken);
                }

                if (writer is null)
                {
                    fileName = lease.Kind switch
                    {
                        ExportFileKinds.Deleted => ExportFileNames.DeletedPart(lease.Type, lease.PartitionNo, partNo, lease.Token),
                        ExportFileKinds.PatientBlocks => ExportFileNames.BlocksPart(lease.PartitionNo, partNo, lease.Token),
                        _ => ExportFileNames.Part(lease.Type, lease.PartitionNo, partNo, lease.Token),
                    };
                    writer = await files.CreateAsync(job.Id, fileName, cancellationToken);
                    sink = projected ? new ProjectingSink(writer, job.Request) : writer;
                    inPart = 0;
                }

                // Stored JSON text goes to the part as UTF-8 bytes, never parsed or re-serialized (unless _elements).
                var room = settings.MaxPartBytes - writer.BytesWritten;
                var copy = blocks
                    ? await source.CopyPatientBlocksAsync(
                        ExportRanges.BlockPatients(job, cursor, lease.UpToSeq, Math.Max(1, settings.ReadBatchRows / 100)),
                        ranges.BlockPatientSelection(job), ranges.BlockMembers(job), sink!, room, cancellationToken)
                    : await source.CopySnapshotAsync(ranges.ForPartition(job, lease, cursor, settings.ReadBatchRows), sink!, room, cancellationToken);
                inPart += copy.Rows;
                cursor = copy.LastSeq;
                if (inPart > 0 && (writer.BytesWritten >= settings.MaxPartBytes || copy.Exhausted))
                {
                    await PublishAsync(lease, writer, fileName!, partNo, inPart, cursor, cancellationToken);
                    await writer.DisposeAsync();
                    writer = null;
                    exported += inPart;
                    partNo++;
                }

                // Resources left out (not JSON) go to an error part of this partition, committed once no data part
                // holds rows before the cursor it commits.
                problems.AddRange(copy.Problems);
                if (problems.Count > 0 && (writer is null || inPart == 0))
                {
                    await PublishProblemsAsync(job, lease, partNo, cursor, problems, cancellationToken);
                    problems.Clear();
                    partNo++;
                }

                if (copy.Exhausted)
                {
                    return exported;
                }
            }
        }
        finally
        {
            if (writer is not null)
            {
                await writer.DisposeAsync();
            }
        }
    }

    private async Task PublishProblemsAsync(ExportJob job, PartitionLease lease, int partNo, long cursor, IReadOnlyList<string> problems, CancellationToken cancellationToken)
    {
        var fileName = ExportFileNames.ErrorPart(lease.PartitionNo, partNo, lease.Token);
        await using var writer = await files.CreateAsync(job.Id, fileName, cancellationToken);
        await writer.WriteAsync(ExportOutcomes.Lines(problems, "error", "structure"), cancellationToken);
        await writer.PublishAsync(cancellationToken);
        var file = new ExportFile(lease.JobId, fileName, ExportFileKinds.Error, "OperationOutcome", lease.PartitionNo, partNo, problems.Count, writer.BytesWritten);
        if (!await jobs.CommitPartAsync(lease, file, cursor, cancellationToken))
        {
            await files.DeleteFileAsync(lease.JobId, fileName, CancellationToken.None);
            throw new LeaseLostException();
        }

        LogResourcesLeftOut(logger, job.Id, lease.PartitionNo, problems.Count);
    }

    private async Task PublishAsync(PartitionLease lease, IExportPartWriter writer, string fileName, int partNo, long count, long cursor, CancellationToken cancellationToken)
    {
        using var activity = ExportTelemetry.ActivitySource.StartActivity("helios.export.part");
        activity?.SetTag("helios.export.file", fileName);
        activity?.SetTag("helios.export.resources", count);
        activity?.SetTag("helios.export.bytes", writer.BytesWritten);
        await writer.PublishAsync(cancellationToken);
        var file = new ExportFile(lease.JobId, fileName, lease.Kind == ExportFileKinds.Deleted ? ExportFileKinds.Deleted : ExportFileKinds.Output, lease.Type, lease.PartitionNo, partNo, count, writer.BytesWritten);
        if (!await jobs.CommitPartAsync(lease, file, cursor, cancellationToken))
        {
            // Stale: someone else holds the partition now (or the export ended). This part was never committed, and
            // its name carries our token, so removing it cannot touch the new holder's files.
            await files.DeleteFileAsync(lease.JobId, fileName, CancellationToken.None);
            throw new LeaseLostException();
        }

        ExportTelemetry.PartsPublished.Add(1);
        ExportTelemetry.ResourcesExported.Add(count, new KeyValuePair<string, object?>("resource_type", lease.Type));
        ExportTelemetry.BytesWritten.Add(writer.BytesWritten);
    }

    private async Task HeartbeatAsync(PartitionLease lease, Action onLost, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        using var timer = new PeriodicTimer(settings.HeartbeatInterval, timeProvider);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                try
                {
                    if (!await jobs.RenewLeaseAsync(lease, settings.LeaseDuration, cancellationToken))
                    {
                        onLost();
                        return;
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // A failed renewal is retried on the next tick; the lease outlives several ticks.
                    LogHeartbeatFailed(logger, ex, lease.JobId, lease.PartitionNo);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task TryReleaseAsync(PartitionLease lease, string reason, TimeSpan retryAfter)
    {
        try
        {
            await jobs.ReleasePartitionAsync(lease, reason, retryAfter, CancellationToken.None);
        }
        catch (Exception ex)
        {
            // The lease then simply expires.
            LogReleaseFailed(logger, ex, lease.JobId, lease.PartitionNo);
        }
    }

    private async Task OnJobCompletedAsync(ExportJob job, CancellationToken cancellationToken)
    {
        using var activity = ExportTelemetry.StartStage("helios.export.complete", job);
        // The population and the associated-resource sets.
        await source.DeletePatientSetAsync(job.Id, cancellationToken);
        // What failed attempts and stale workers left: the store then holds exactly the manifest's files.
        try
        {
            var committed = (await jobs.GetFilesAsync(job.Id, cancellationToken)).Select(f => f.FileName).ToHashSet(StringComparer.Ordinal);
            var removed = await files.DeleteUnreferencedAsync(job.Id, committed, cancellationToken);
            if (removed > 0)
            {
                LogLeftoversRemoved(logger, job.Id, removed);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The export is complete; what is left goes when it expires.
            LogLeftoversNotRemoved(logger, ex, job.Id);
        }

        ExportTelemetry.JobsFinished.Add(1, new KeyValuePair<string, object?>("outcome", "completed"));
        ExportTelemetry.JobDuration.Record((timeProvider.GetUtcNow() - job.CreatedAt).TotalSeconds,
            new KeyValuePair<string, object?>("level", job.Request.Level.ToString()));
        LogJobCompleted(logger, job.Id);
    }

    /// <summary>Whether the export is no longer running (false when that cannot be read now: then it is a failure).</summary>
    private async Task<bool> HasEndedAsync(string jobId)
    {
        try
        {
            return await jobs.GetJobAsync(jobId, CancellationToken.None) is not { Status: ExportJobStatus.Running };
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>The error a failed attempt records (shown in the status response if the export is abandoned).</summary>
    private static string Describe(Exception ex)
    {
        var message = ex is ExportFileStoreException or System.Data.Common.DbException ? ex.Message : $"{ex.GetType().Name}: {ex.Message}";
        return message.Length <= 1000 ? message : message[..1000];
    }

    private sealed class LeaseLostException() : OperationCanceledException("The partition's lease is held by another worker now, or the export ended.");

    [LoggerMessage(Level = LogLevel.Debug, Message = "Export {JobId}: no partition left to claim (all done or leased elsewhere, or the export ended)")]
    private static partial void LogNothingToClaim(ILogger logger, string jobId);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Export {JobId} partition {PartitionNo} ({Type}) done: {Count} resources")]
    private static partial void LogPartitionDone(ILogger logger, string jobId, int partitionNo, string type, long count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Export {JobId} partition {PartitionNo}: {Count} stored resources are not valid JSON and were left out (listed in the error file)")]
    private static partial void LogResourcesLeftOut(ILogger logger, string jobId, int partitionNo, int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Export {JobId}: removed {Count} files or unfinished uploads that no committed part points at")]
    private static partial void LogLeftoversRemoved(ILogger logger, string jobId, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Export {JobId}: files no committed part points at could not be removed now; they go when the export expires")]
    private static partial void LogLeftoversNotRemoved(ILogger logger, Exception exception, string jobId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Export {JobId} completed")]
    private static partial void LogJobCompleted(ILogger logger, string jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Export {JobId} partition {PartitionNo}: lease (token {Token}) lost; the run stops and its uncommitted work is discarded")]
    private static partial void LogLeaseLost(ILogger logger, string jobId, int partitionNo, long token);

    [LoggerMessage(Level = LogLevel.Information, Message = "Export {JobId} partition {PartitionNo}: worker shutting down, lease released")]
    private static partial void LogShutdown(ILogger logger, string jobId, int partitionNo);

    [LoggerMessage(Level = LogLevel.Error, Message = "Export {JobId} partition {PartitionNo} failed (attempt {Attempt}); it may be claimed again in {RetryAfterSeconds} s")]
    private static partial void LogPartitionFailed(ILogger logger, Exception exception, string jobId, int partitionNo, int attempt, double retryAfterSeconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Export {JobId} partition {PartitionNo}: the export ended while it ran ({Error}); its work is discarded")]
    private static partial void LogEndedUnderneath(ILogger logger, string jobId, int partitionNo, string error);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Export {JobId}: waiting {Seconds:0.0} s for a failed partition's next attempt")]
    private static partial void LogWaitingForRetry(ILogger logger, string jobId, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Export {JobId}: the run ends; a failed partition's next attempt is due in {Seconds:0.0} s, and the supervisor enqueues a run then")]
    private static partial void LogRetryLater(ILogger logger, string jobId, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Export {JobId} partition {PartitionNo}: heartbeat failed")]
    private static partial void LogHeartbeatFailed(ILogger logger, Exception exception, string jobId, int partitionNo);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Export {JobId} partition {PartitionNo}: lease could not be released; it will expire")]
    private static partial void LogReleaseFailed(ILogger logger, Exception exception, string jobId, int partitionNo);
}
