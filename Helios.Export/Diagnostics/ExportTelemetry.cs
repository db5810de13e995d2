using System.Diagnostics;
using System.Diagnostics.Metrics;
using Helios.Export.Jobs;

namespace Helios.Export.Diagnostics;

/// <summary>The <c>Helios.Export</c> ActivitySource and Meter: one span per stage (kick-off, plan, partition, part,
/// completion), counters for what was exported (exported by ServiceDefaults, visible in the Aspire dashboard).</summary>
public static class ExportTelemetry
{
    public const string Name = "Helios.Export";

    public static readonly ActivitySource ActivitySource = new(Name);

    /// <summary>The tag (and log scope key) that carries an export's job id.</summary>
    public const string JobIdTag = "helios.export.job_id";

    /// <summary>Starts a stage span as a child of the export's kick-off span, whose W3C context the job row keeps: the
    /// stage runs later, in a Hangfire job, often in another process, and still lands in the export's one trace.</summary>
    public static Activity? StartStage(string name, ExportJob job)
    {
        ArgumentNullException.ThrowIfNull(job);
        var parent = job.TraceParent is { } traceParent && ActivityContext.TryParse(traceParent, null, isRemote: true, out var context)
            ? context
            : default;
        var activity = ActivitySource.StartActivity(name, ActivityKind.Internal, parent);
        activity?.SetTag(JobIdTag, job.Id);
        return activity;
    }

    /// <summary>A log scope that puts the job id on every record written inside it (storage's included).</summary>
    public static IDisposable? BeginJobScope(Microsoft.Extensions.Logging.ILogger logger, string jobId) =>
        logger.BeginScope(new Dictionary<string, object> { [JobIdTag] = jobId });

    private static readonly Meter s_meter = new(Name);

    public static readonly Counter<long> JobsStarted = s_meter.CreateCounter<long>("helios.export.jobs.started", unit: "{job}");

    public static readonly Counter<long> JobsFinished = s_meter.CreateCounter<long>("helios.export.jobs.finished", unit: "{job}", description: "Exports that ended, by outcome (completed, failed, cancelled).");

    public static readonly Counter<long> ResourcesExported = s_meter.CreateCounter<long>("helios.export.resources", unit: "{resource}");

    public static readonly Counter<long> BytesWritten = s_meter.CreateCounter<long>("helios.export.bytes", unit: "By");

    public static readonly Counter<long> PartsPublished = s_meter.CreateCounter<long>("helios.export.parts", unit: "{file}");

    public static readonly Counter<long> LeasesLost = s_meter.CreateCounter<long>("helios.export.leases_lost", unit: "{lease}");

    public static readonly Counter<long> RunsRequeued = s_meter.CreateCounter<long>("helios.export.runs_requeued", unit: "{job}", description: "Runs the supervisor enqueued for exports whose worker died or whose Hangfire jobs were lost.");

    public static readonly Histogram<double> PartitionDuration = s_meter.CreateHistogram<double>("helios.export.partition.duration", unit: "s");

    public static readonly Counter<long> PartitionsQueued = s_meter.CreateCounter<long>("helios.export.partitions.queued", unit: "{partition}", description: "Partitions planned (queued for the workers).");

    public static readonly Counter<long> PartitionsFailed = s_meter.CreateCounter<long>("helios.export.partitions.failed", unit: "{partition}", description: "Partition attempts that failed (store or file store errors) and were released to back off and retry.");

    public static readonly Counter<long> PartitionsReclaimed = s_meter.CreateCounter<long>("helios.export.partitions.reclaimed", unit: "{partition}", description: "Partitions claimed again after an earlier attempt (its worker died, lost its lease or failed).");

    public static readonly UpDownCounter<long> PartitionsRunning = s_meter.CreateUpDownCounter<long>("helios.export.partitions.running", unit: "{partition}", description: "Partitions this process is exporting now.");

    public static readonly Counter<long> KickoffsRefused = s_meter.CreateCounter<long>("helios.export.kickoffs.refused", unit: "{request}", description: "Kick-offs refused, by reason (invalid, too_many, not_found, forbidden) and level.");

    public static readonly Histogram<double> JobDuration = s_meter.CreateHistogram<double>("helios.export.job.duration", unit: "s", description: "Kick-off to completed manifest.");

    private static ExportActivity? s_activity;

    /// <summary>The deployment's export activity as last read from the job store. Reported by one process only (the
    /// Api), so the gauges are not counted once per process.</summary>
    public static void ReportActivity(ExportActivity activity) => Volatile.Write(ref s_activity, activity);

    private static IEnumerable<Measurement<long>> Observe(Func<ExportActivity, long> value) =>
        Volatile.Read(ref s_activity) is { } activity ? [new Measurement<long>(value(activity))] : [];

    public static readonly ObservableGauge<long> ActiveExports = s_meter.CreateObservableGauge("helios.export.jobs.active",
        () => Observe(a => a.ActiveJobs), unit: "{job}", description: "Exports accepted or running, in the whole deployment.");

    public static readonly ObservableGauge<long> PartitionsWaiting = s_meter.CreateObservableGauge("helios.export.partitions.waiting",
        () => Observe(a => a.WaitingPartitions), unit: "{partition}", description: "Partitions of running exports that no worker holds (queued, or reclaimable after an expired lease), in the whole deployment.");

    public static readonly ObservableGauge<long> PartitionsLeased = s_meter.CreateObservableGauge("helios.export.partitions.leased",
        () => Observe(a => a.LeasedPartitions), unit: "{partition}", description: "Partitions under a live lease, in the whole deployment.");
}
