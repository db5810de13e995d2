using System.Collections.Concurrent;

namespace Helios.Export.Tests.Engine;

/// <summary>Records what the engine would hand to Hangfire.</summary>
internal sealed class RecordingScheduler : IExportScheduler
{
    public ConcurrentQueue<(string Kind, string JobId)> Enqueued { get; } = new();

    public void EnqueuePlan(string jobId) => Enqueued.Enqueue(("plan", jobId));

    public void EnqueueRun(string jobId) => Enqueued.Enqueue(("run", jobId));

    public int Count(string kind, string jobId) => Enqueued.Count(e => e.Kind == kind && e.JobId == jobId);
}
