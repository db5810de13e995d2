using System.Diagnostics;
using Helios.Storage;
using Microsoft.Extensions.Options;

namespace Helios.Export.Engine;

public enum KickoffStatus
{
    Accepted,
    GroupNotFound,
    ClientLimitReached,
    TenantLimitReached,
}

public sealed record KickoffResult(KickoffStatus Status, ExportJob? Job);

/// <summary>Starts an export: fixes its snapshot (key and transaction time), persists the job, enqueues planning.</summary>
public sealed class ExportKickoff(IExportJobStore jobs, IResourceStore store, IExportScheduler scheduler, TimeProvider timeProvider, IOptions<ExportOptions> options)
{
    public async Task<KickoffResult> StartAsync(ExportRequest request, string tenant, string owner, string requestUrl, string baseUrl, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var activity = ExportTelemetry.ActivitySource.StartActivity("helios.export.kickoff");
        activity?.SetTag("helios.export.level", request.Level.ToString());
        if (request.Level == ExportLevel.Group)
        {
            var group = await store.ReadAsync("Group", request.GroupId!, cancellationToken);
            if (group is null || group.IsDeleted)
            {
                return new KickoffResult(KickoffStatus.GroupNotFound, null);
            }
        }

        var snapshot = await store.CaptureSnapshotAsync(cancellationToken);
        var job = new ExportJob(Guid.NewGuid().ToString("N"), tenant, owner, ExportJobStatus.Accepted, request, requestUrl, baseUrl,
            snapshot.TransactionTime, snapshot.Seq, timeProvider.GetUtcNow(), null, null, null)
        {
            TraceParent = Activity.Current?.Id,
        };
        var outcome = await jobs.CreateJobAsync(job, options.Value.MaxActivePerClient, options.Value.MaxActivePerTenant, cancellationToken);
        switch (outcome)
        {
            case CreateJobOutcome.ClientLimitReached:
                return new KickoffResult(KickoffStatus.ClientLimitReached, null);
            case CreateJobOutcome.TenantLimitReached:
                return new KickoffResult(KickoffStatus.TenantLimitReached, null);
        }

        activity?.SetTag("helios.export.job_id", job.Id);
        activity?.SetStatus(ActivityStatusCode.Ok);
        ExportTelemetry.JobsStarted.Add(1, new KeyValuePair<string, object?>("level", request.Level.ToString()));
        scheduler.EnqueuePlan(job.Id);
        return new KickoffResult(KickoffStatus.Accepted, job);
    }
}
