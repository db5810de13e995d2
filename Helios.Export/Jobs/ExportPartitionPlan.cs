namespace Helios.Export.Jobs;

/// <summary>One unit of leased work: a resource type and a key range of it.</summary>
public sealed record ExportPartitionPlan(int PartitionNo, string Type, long AfterSeq, long UpToSeq, long EstimatedRows)
{
    /// <summary><see cref="ExportFileKinds.Output"/> (resources) or <see cref="ExportFileKinds.Deleted"/> (deletions).</summary>
    public string Kind { get; init; } = ExportFileKinds.Output;
}
