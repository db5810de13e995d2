namespace Helios.Export.Jobs;

/// <summary>What finishing a partition did.</summary>
public enum PartitionCompletion
{
    /// <summary>The lease was stale (reclaimed, or the export ended): nothing was written.</summary>
    Refused,
    Done,
    /// <summary>Done, and it was the last one: the export is complete.</summary>
    JobCompleted,
}
