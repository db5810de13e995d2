namespace Helios.Export.Engine;

/// <summary>Hands export work to the job system (Hangfire, behind an adapter): one job to plan an export, then several jobs that each claim and run the
/// export's partitions until none is left (so a lost Hangfire job strands no particular partition).</summary>
public interface IExportScheduler
{
    void EnqueuePlan(string jobId);

    void EnqueueRun(string jobId);
}
