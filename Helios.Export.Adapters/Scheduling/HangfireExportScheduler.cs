using Hangfire;
using Helios.Export.Engine;

namespace Helios.Export.Adapters.Scheduling;

/// <summary>The scheduler port on Hangfire: every export job goes to one queue, which every Helios server listens on.</summary>
public sealed class HangfireExportScheduler(IBackgroundJobClient client) : IExportScheduler
{
    /// <summary>The Hangfire queue every export job goes to (Helios's servers listen on it).</summary>
    public const string Queue = "helios-export";

    public void EnqueuePlan(string jobId) =>
        client.Enqueue<ExportJobs>(Queue, jobs => jobs.PlanAsync(jobId, CancellationToken.None));

    public void EnqueueRun(string jobId) =>
        client.Enqueue<ExportJobs>(Queue, jobs => jobs.RunAsync(jobId, CancellationToken.None));
}
