namespace Helios.Export.Jobs;

/// <summary>What the deployment is exporting now: exports accepted or running, partitions of running exports that no
/// worker holds (never claimed, or left behind by an expired lease), and partitions under a live lease.</summary>
public sealed record ExportActivity(long ActiveJobs, long WaitingPartitions, long LeasedPartitions);
