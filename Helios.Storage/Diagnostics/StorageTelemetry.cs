using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Helios.Storage.Diagnostics;

/// <summary>The <c>Helios.Storage</c> ActivitySource and Meter (exported by ServiceDefaults, shown in the Aspire dashboard).</summary>
public static class StorageTelemetry
{
    public const string Name = "Helios.Storage";

    public static readonly ActivitySource ActivitySource = new(Name);

    private static readonly Meter s_meter = new(Name);

    /// <summary>Resource versions written (created, updated, deleted), by resource type and backend.</summary>
    public static readonly Counter<long> VersionsWritten = s_meter.CreateCounter<long>("helios.storage.versions_written", unit: "{version}");

    /// <summary>Duration of write transactions.</summary>
    public static readonly Histogram<double> WriteDuration = s_meter.CreateHistogram<double>("helios.storage.write.duration", unit: "s");

    /// <summary>Single writes committed together in one transaction (group commit).</summary>
    public static readonly Histogram<int> WriteGroupSize = s_meter.CreateHistogram<int>("helios.storage.write.group_size", unit: "{write}");

    /// <summary>Groups the database refused, whose writes were then tried one by one.</summary>
    public static readonly Counter<long> WriteGroupsRetried = s_meter.CreateCounter<long>("helios.storage.write.groups_retried", unit: "{group}");

    /// <summary>Duration of searches (page query, count and includes).</summary>
    public static readonly Histogram<double> SearchDuration = s_meter.CreateHistogram<double>("helios.storage.search.duration", unit: "s");

    /// <summary>Resources stored by the bulk loader (its throughput is this counter's rate).</summary>
    public static readonly Counter<long> BulkResourcesLoaded = s_meter.CreateCounter<long>("helios.storage.bulk.loaded", unit: "{resource}");

    /// <summary>Duration of one bulk-load batch write.</summary>
    public static readonly Histogram<double> BulkBatchDuration = s_meter.CreateHistogram<double>("helios.storage.bulk.batch.duration", unit: "s");

    /// <summary>Lines refused by the bulk loader.</summary>
    public static readonly Counter<long> BulkLinesRejected = s_meter.CreateCounter<long>("helios.storage.bulk.rejected", unit: "{line}");
}
