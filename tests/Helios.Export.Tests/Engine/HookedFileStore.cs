namespace Helios.Export.Tests.Engine;

/// <summary>A real file store (local, or S3 on the test server), with a hook that runs when a part is about to be published (a test acts there:
/// steals the lease, stops the worker, or fails the write).</summary>
internal sealed class HookedFileStore(IExportFileStore inner) : IExportFileStore
{
    public IExportFileStore Inner { get; } = inner;

    /// <summary>Called with the file name before each publish; may throw.</summary>
    public Func<string, Task>? BeforePublish { get; set; }

    public List<string> Published { get; } = [];

    public bool CanPresign => Inner.CanPresign;

    public async Task<IExportPartWriter> CreateAsync(string jobId, string fileName, CancellationToken cancellationToken) =>
        new Writer(this, fileName, await Inner.CreateAsync(jobId, fileName, cancellationToken));

    public Task DeleteFileAsync(string jobId, string fileName, CancellationToken cancellationToken) => Inner.DeleteFileAsync(jobId, fileName, cancellationToken);

    public Task DeleteJobAsync(string jobId, CancellationToken cancellationToken) => Inner.DeleteJobAsync(jobId, cancellationToken);

    public Task<int> DeleteUnreferencedAsync(string jobId, IReadOnlySet<string> keep, CancellationToken cancellationToken) =>
        Inner.DeleteUnreferencedAsync(jobId, keep, cancellationToken);

    public Task CheckAvailableAsync(CancellationToken cancellationToken) => Inner.CheckAvailableAsync(cancellationToken);

    public Task<IReadOnlyList<string>> ListAsync(string jobId, CancellationToken cancellationToken) => Inner.ListAsync(jobId, cancellationToken);

    public Task<Uri> GetPresignedUrlAsync(string jobId, string fileName, TimeSpan lifetime, CancellationToken cancellationToken) =>
        Inner.GetPresignedUrlAsync(jobId, fileName, lifetime, cancellationToken);

    public string? GetLocalPath(string jobId, string fileName) => Inner.GetLocalPath(jobId, fileName);

    private sealed class Writer(HookedFileStore store, string fileName, IExportPartWriter inner) : IExportPartWriter
    {
        public long BytesWritten => inner.BytesWritten;

        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken) => inner.WriteAsync(data, cancellationToken);

        public async Task PublishAsync(CancellationToken cancellationToken)
        {
            if (store.BeforePublish is { } hook)
            {
                await hook(fileName);
            }

            await inner.PublishAsync(cancellationToken);
            store.Published.Add(fileName);
        }

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
