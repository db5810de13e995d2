namespace Helios.Export.Jobs;

/// <summary>A published, committed file of an export.</summary>
public sealed record ExportFile(string JobId, string FileName, string Kind, string Type, int PartitionNo, int PartNo, long ResourceCount, long ByteCount)
{
    /// <summary>With <c>allowPartialManifests</c>: the manifest page that lists this file, fixed when that page was
    /// first served (null until then).</summary>
    public int? ManifestPage { get; init; }
}
