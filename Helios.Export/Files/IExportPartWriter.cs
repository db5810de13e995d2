using Helios.Storage.Snapshots;

namespace Helios.Export.Files;

/// <summary>One part being written. Disposing it unpublished discards it.</summary>
public interface IExportPartWriter : ISnapshotSink, IAsyncDisposable
{
    long BytesWritten { get; }

    Task PublishAsync(CancellationToken cancellationToken);
}
