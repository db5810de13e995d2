using Helios.Export.Diagnostics;
using Helios.Export.Files;
using Helios.Export.Jobs;
using Helios.Storage.Snapshots;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Helios.Export.Engine;

/// <summary>
/// Runs in every process of the deployment. Each tick it (1) enqueues Hangfire jobs for work that has none
/// (a partition whose lease expired because its worker died, or an export nobody is working on although partitions
/// are left: its Hangfire jobs were lost with a killed worker or a non-durable Hangfire storage), (2) fails exports whose partition used up its attempts, and (3) deletes cancelled
/// and expired exports: files first, then rows.
/// </summary>
public sealed partial class ExportSupervisor(
    IExportJobStore jobs,
    IExportFileStore files,
    IExportSource source,
    IExportScheduler scheduler,
    TimeProvider timeProvider,
    IOptions<ExportOptions> options,
    ExportSupervisorSettings settings,
    ILogger<ExportSupervisor> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (settings.ResetLeasesOnStartup)
        {
            await jobs.ResetAfterRestartAsync(stoppingToken);
        }

        using var timer = new PeriodicTimer(options.Value.SupervisorInterval, timeProvider);
        do
        {
            try
            {
                await TickAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogTickFailed(logger, ex);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <summary>One pass of the supervisor (public so tests can drive it deterministically).</summary>
    public async Task TickAsync(CancellationToken cancellationToken)
    {
        var settingsValue = options.Value;
        var work = await jobs.TakeWorkToEnqueueAsync(timeProvider.GetUtcNow() - settingsValue.RequeueAfter, cancellationToken);
        foreach (var item in work)
        {
            if (item.Plan)
            {
                scheduler.EnqueuePlan(item.JobId);
            }
            else
            {
                scheduler.EnqueueRun(item.JobId);
                ExportTelemetry.RunsRequeued.Add(1);
            }
        }

        if (work.Count > 0)
        {
            LogRequeued(logger, work.Count);
        }

        foreach (var (jobId, partitionNo, lastError) in await jobs.FindAbandonedAsync(settingsValue.MaxAttempts, cancellationToken))
        {
            var message = $"The export was abandoned: partition {partitionNo} failed {settingsValue.MaxAttempts} times" +
                (lastError is null ? "." : $"; last error: {lastError}");
            await jobs.FailJobAsync(jobId, message, settingsValue.OutputTtl, cancellationToken);
            ExportTelemetry.JobsFinished.Add(1, new KeyValuePair<string, object?>("outcome", "failed"));
            LogAbandoned(logger, jobId, partitionNo);
            // A failed export serves no files: remove them now (its status stays until it expires, and the expiry
            // removes whatever could not be removed now, e.g. with the file store still down).
            try
            {
                await files.DeleteJobAsync(jobId, cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogFailedFilesKept(logger, ex, jobId);
            }
        }

        foreach (var jobId in await jobs.FindDisposableAsync(100, cancellationToken))
        {
            await files.DeleteJobAsync(jobId, cancellationToken);
            await source.DeletePatientSetAsync(jobId, cancellationToken);
            await jobs.DeleteJobAsync(jobId, cancellationToken);
            LogDeleted(logger, jobId);
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Export supervisor pass failed; retrying on the next tick")]
    private static partial void LogTickFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Information, Message = "Export supervisor enqueued {Count} plans or runs for exports that had no live worker")]
    private static partial void LogRequeued(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "Export {JobId} failed: partition {PartitionNo} used up its attempts")]
    private static partial void LogAbandoned(ILogger logger, string jobId, int partitionNo);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Export {JobId} failed; its files could not be removed now and go when it expires")]
    private static partial void LogFailedFilesKept(ILogger logger, Exception exception, string jobId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Export {JobId} deleted (cancelled or expired): files, then rows")]
    private static partial void LogDeleted(ILogger logger, string jobId);
}
