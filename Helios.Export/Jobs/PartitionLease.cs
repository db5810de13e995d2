namespace Helios.Export.Jobs;

/// <summary>A held lease on a partition. <see cref="Token"/> is the fencing token: every commit names it, and a claim
/// by anyone else bumps it, so a stale holder's writes are refused.</summary>
public sealed record PartitionLease(
    string JobId,
    int PartitionNo,
    string WorkerId,
    long Token,
    string Type,
    long AfterSeq,
    long UpToSeq,
    long CursorSeq,
    int NextPart,
    long Exported,
    int Attempt)
{
    /// <summary>What the partition writes: resources or deletions (see <see cref="ExportPartitionPlan.Kind"/>).</summary>
    public string Kind { get; init; } = ExportFileKinds.Output;
}
