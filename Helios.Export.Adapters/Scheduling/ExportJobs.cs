using Hangfire;
using Helios.Export.Engine;

namespace Helios.Export.Adapters.Scheduling;

/// <summary>The Hangfire entry points. Hangfire's own retries are off: Helios's tables are the source of truth, and
/// the supervisor re-enqueues work whose lease expired or that failed, up to <see cref="ExportOptions.MaxAttempts"/>.</summary>
public sealed class ExportJobs(ExportPlanner planner, ExportPartitionRunner runner)
{
    [AutomaticRetry(Attempts = 0)]
    [JobDisplayName("Plan export {0}")]
    public Task PlanAsync(string jobId, CancellationToken cancellationToken) => planner.PlanAsync(jobId, cancellationToken);

    [AutomaticRetry(Attempts = 0)]
    [JobDisplayName("Run export {0}")]
    public Task RunAsync(string jobId, CancellationToken cancellationToken) => runner.RunAsync(jobId, cancellationToken);
}
