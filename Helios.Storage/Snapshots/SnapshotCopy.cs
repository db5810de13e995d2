namespace Helios.Storage.Snapshots;

/// <summary>Where <see cref="IExportSource.CopySnapshotAsync"/> stopped: rows and bytes written, the last key
/// written (resume after it), and whether the range has no more rows.</summary>
public sealed record SnapshotCopy(long Rows, long Bytes, long LastSeq, bool Exhausted)
{
    /// <summary>Stored resources left out because their text is not JSON, each described for the error file.</summary>
    public IReadOnlyList<string> Problems { get; init; } = [];
}
