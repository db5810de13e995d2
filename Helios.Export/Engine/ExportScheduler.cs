using Hangfire;

namespace Helios.Export.Engine;

/// <summary>Hands export work to Hangfire: one job to plan an export, then several jobs that each claim and run the
/// export's partitions until none is left (so a lost Hangfire job strands no particular partition).</summary>
public interface IExportScheduler
{
    void EnqueuePlan(string jobId);

    void EnqueueRun(string jobId);
}

public sealed class HangfireExportScheduler(IBackgroundJobClient client) : IExportScheduler
{
    /// <summary>The Hangfire queue every export job goes to (Helios's servers listen on it).</summary>
    public const string Queue = "helios-export";

    public void EnqueuePlan(string jobId) =>
        client.Enqueue<ExportJobs>(Queue, jobs => jobs.PlanAsync(jobId, CancellationToken.None));

    public void EnqueueRun(string jobId) =>
        client.Enqueue<ExportJobs>(Queue, jobs => jobs.RunAsync(jobId, CancellationToken.None));
}

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

/// <summary>This process's worker id (lease owner name): unique across hosts and restarts.</summary>
public sealed class ExportWorkerIdentity
{
    public string Id { get; } = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}";
}
