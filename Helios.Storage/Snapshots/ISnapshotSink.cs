namespace Helios.Storage.Snapshots;

/// <summary>Receives NDJSON bytes from <see cref="IExportSource.CopySnapshotAsync"/>.</summary>
public interface ISnapshotSink
{
    ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken);
}
