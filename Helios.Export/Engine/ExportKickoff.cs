using System.Diagnostics;
using Helios.Export.Diagnostics;
using Helios.Export.Jobs;
using Helios.Export.Requests;
using Helios.Storage;
using Helios.Storage.Snapshots;
using Microsoft.Extensions.Options;

namespace Helios.Export.Engine;

/// <summary>Starts an export: fixes its snapshot (key and transaction time), persists the job, enqueues planning.
/// A kick-off the caller must change or retry throws <see cref="ExportGroupNotFoundException"/> or
/// <see cref="ExportThrottledException"/>.</summary>
public sealed class ExportKickoff(
    IExportJobStore jobs,
    IResourceStore store,
    IExportSource source,
    IExportScheduler scheduler,
    TimeProvider timeProvider,
    IOptions<ExportOptions> options)
{
    public async Task<ExportJob> StartAsync(ExportRequest request, string tenant, string owner, string requestUrl, string baseUrl, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var activity = ExportTelemetry.ActivitySource.StartActivity("helios.export.kickoff");
        activity?.SetTag("helios.export.level", request.Level.ToString());
        if (request.Level == ExportLevel.Group)
        {
            var group = await store.ReadAsync("Group", request.GroupId!, cancellationToken);
            if (group is null || group.IsDeleted)
            {
                throw new ExportGroupNotFoundException(request.GroupId!);
            }
        }

        var snapshot = await source.CaptureSnapshotAsync(cancellationToken);
        // _until: the data as it was then. Later writes have larger keys and later instants, so the last key written by
        // then is that point in time (taken after the capture: nothing can still be written at or before it).
        var seq = request.Until is { } until && until < snapshot.TransactionTime
            ? Math.Min(snapshot.Seq, await source.GetSeqAtAsync(until, cancellationToken))
            : snapshot.Seq;
        var job = new ExportJob(Guid.NewGuid().ToString("N"), tenant, owner, ExportJobStatus.Accepted, request, requestUrl, baseUrl,
            snapshot.TransactionTime, seq, timeProvider.GetUtcNow(), null, null, null)
        {
            TraceParent = Activity.Current?.Id,
        };
        var settings = options.Value;
        var outcome = await jobs.CreateJobAsync(job, settings.MaxActivePerClient, settings.MaxActivePerTenant, cancellationToken);
        var retryAfter = TimeSpan.FromSeconds(settings.RetryAfterSeconds * 15);
        switch (outcome)
        {
            case CreateJobOutcome.ClientLimitReached:
                throw new ExportThrottledException(
                    $"This client already has {settings.MaxActivePerClient} exports accepted or running; wait for one to finish (or cancel one with DELETE on its status URL) and try again.",
                    retryAfter);
            case CreateJobOutcome.TenantLimitReached:
                throw new ExportThrottledException($"This tenant already has {settings.MaxActivePerTenant} exports accepted or running; try again later.", retryAfter);
        }

        activity?.SetTag("helios.export.job_id", job.Id);
        activity?.SetStatus(ActivityStatusCode.Ok);
        ExportTelemetry.JobsStarted.Add(1, new KeyValuePair<string, object?>("level", request.Level.ToString()));
        scheduler.EnqueuePlan(job.Id);
        return job;
    }
}
