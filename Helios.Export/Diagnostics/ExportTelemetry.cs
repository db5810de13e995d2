using System.Diagnostics;
using System.Diagnostics.Metrics;
using Helios.Export.Jobs;

namespace Helios.Export.Diagnostics;

/// <summary>The <c>Helios.Export</c> ActivitySource and Meter: one span per stage (kick-off, plan, partition, part),
/// counters for what was exported (exported by ServiceDefaults, visible in the Aspire dashboard).</summary>
public static class ExportTelemetry
{
    public const string Name = "Helios.Export";

    public static readonly ActivitySource ActivitySource = new(Name);

    /// <summary>Starts a stage span linked to the export's kick-off trace (the work runs later, elsewhere).</summary>
    public static Activity? StartStage(string name, ExportJob job)
    {
        ArgumentNullException.ThrowIfNull(job);
        var links = job.TraceParent is { } parent && ActivityContext.TryParse(parent, null, out var context)
            ? new[] { new ActivityLink(context) }
            : null;
        var activity = ActivitySource.StartActivity(name, ActivityKind.Internal, parentContext: default, links: links);
        activity?.SetTag("helios.export.job_id", job.Id);
        return activity;
    }

    private static readonly Meter s_meter = new(Name);

    public static readonly Counter<long> JobsStarted = s_meter.CreateCounter<long>("helios.export.jobs.started", unit: "{job}");

    public static readonly Counter<long> JobsFinished = s_meter.CreateCounter<long>("helios.export.jobs.finished", unit: "{job}", description: "Exports that ended, by outcome (completed, failed, cancelled).");

    public static readonly Counter<long> ResourcesExported = s_meter.CreateCounter<long>("helios.export.resources", unit: "{resource}");

    public static readonly Counter<long> BytesWritten = s_meter.CreateCounter<long>("helios.export.bytes", unit: "By");

    public static readonly Counter<long> PartsPublished = s_meter.CreateCounter<long>("helios.export.parts", unit: "{file}");

    public static readonly Counter<long> LeasesLost = s_meter.CreateCounter<long>("helios.export.leases_lost", unit: "{lease}");

    public static readonly Counter<long> RunsRequeued = s_meter.CreateCounter<long>("helios.export.runs_requeued", unit: "{job}", description: "Runs the supervisor enqueued for exports whose worker died or whose Hangfire jobs were lost.");

    public static readonly Histogram<double> PartitionDuration = s_meter.CreateHistogram<double>("helios.export.partition.duration", unit: "s");

    public static readonly Histogram<double> JobDuration = s_meter.CreateHistogram<double>("helios.export.job.duration", unit: "s", description: "Kick-off to completed manifest.");
}
