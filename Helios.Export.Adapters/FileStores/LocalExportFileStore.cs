using Helios.Export.Files;

namespace Helios.Export.Adapters.FileStores;

/// <summary>Export files under a local directory: <c>{root}/{job}/{file}</c>, written as a hidden temp file and
/// renamed into place when published, durably (file and directory synced) before the part's commit.</summary>
public sealed class LocalExportFileStore : IExportFileStore
{
    private readonly string _root;

    public LocalExportFileStore(string root)
    {
        _root = Path.GetFullPath(root);
        Directory.CreateDirectory(_root);
    }

    public bool CanPresign => false;

    public Task<IExportPartWriter> CreateAsync(string jobId, string fileName, CancellationToken cancellationToken)
    {
        var directory = JobDirectory(jobId);
        var final = Path.Combine(directory, SafeName(fileName));
        var temp = Path.Combine(directory, $".{SafeName(fileName)}.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(directory);
            return Task.FromResult<IExportPartWriter>(new Writer(temp, final));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw Failed(ex);
        }
    }

    /// <summary>A write error as the export reports it (e.g. "No space left on device").</summary>
    private static ExportFileStoreException Failed(Exception ex) =>
        new($"The export directory could not be written: {ex.Message}", ex);

    public Task DeleteFileAsync(string jobId, string fileName, CancellationToken cancellationToken)
    {
        File.Delete(Path.Combine(JobDirectory(jobId), SafeName(fileName)));
        return Task.CompletedTask;
    }

    public Task DeleteJobAsync(string jobId, CancellationToken cancellationToken)
    {
        var directory = JobDirectory(jobId);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                if (Directory.Exists(directory))
                {
                    Directory.Delete(directory, recursive: true);
                }

                return Task.CompletedTask;
            }
            catch (IOException) when (attempt < 5)
            {
                // A partition still running (a cancelled export's, until its next heartbeat) created or renamed a
                // file while the directory was being emptied: go again.
            }
        }
    }

    public Task<int> DeleteUnreferencedAsync(string jobId, IReadOnlySet<string> keep, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keep);
        var directory = JobDirectory(jobId);
        var removed = 0;
        if (Directory.Exists(directory))
        {
            foreach (var path in Directory.GetFiles(directory))
            {
                if (!keep.Contains(Path.GetFileName(path)))
                {
                    File.Delete(path);
                    removed++;
                }
            }
        }

        return Task.FromResult(removed);
    }

    public Task<IReadOnlyList<string>> ListAsync(string jobId, CancellationToken cancellationToken)
    {
        var directory = JobDirectory(jobId);
        IReadOnlyList<string> names = Directory.Exists(directory) ? Directory.GetFiles(directory).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToList() : [];
        return Task.FromResult(names);
    }

    public Task<Uri> GetPresignedUrlAsync(string jobId, string fileName, TimeSpan lifetime, CancellationToken cancellationToken) =>
        throw new NotSupportedException("Local export files are served by the Api; they have no presigned URLs.");

    public string? GetLocalPath(string jobId, string fileName) => Path.Combine(JobDirectory(jobId), SafeName(fileName));

    public Task CheckAvailableAsync(CancellationToken cancellationToken) =>
        Directory.Exists(_root) ? Task.CompletedTask : Task.FromException(new DirectoryNotFoundException($"The export directory {_root} does not exist."));

    private string JobDirectory(string jobId) => Path.Combine(_root, SafeName(jobId));

    private static string SafeName(string name)
    {
        if (name.Length == 0 || name.Contains('/', StringComparison.Ordinal) || name.Contains('\\', StringComparison.Ordinal) || name.StartsWith('.'))
        {
            throw new ArgumentException($"'{name}' is not a valid export file or job name.", nameof(name));
        }

        return name;
    }

    private sealed class Writer(string tempPath, string finalPath) : IExportPartWriter
    {
        private readonly FileStream _stream = new(tempPath, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            BufferSize = 1 << 20,
            Options = FileOptions.Asynchronous | FileOptions.SequentialScan,
        });

        private bool _published;

        public long BytesWritten { get; private set; }

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            try
            {
                await _stream.WriteAsync(data, cancellationToken);
            }
            catch (IOException ex)
            {
                throw Failed(ex);
            }

            BytesWritten += data.Length;
        }

        /// <summary>Durable before it is committed: the data is flushed to disk (fsync of the file), the temp file
        /// renamed into place, and the rename made durable (fsync of the directory). A machine crash after the commit
        /// cannot bring the part back truncated or missing.</summary>
        public async Task PublishAsync(CancellationToken cancellationToken)
        {
            try
            {
                await _stream.FlushAsync(cancellationToken);
                _stream.Flush(flushToDisk: true);
                await _stream.DisposeAsync();
                File.Move(tempPath, finalPath, overwrite: false);
                _published = true;
                DirectorySync.Sync(Path.GetDirectoryName(finalPath)!);
            }
            catch (IOException ex)
            {
                throw Failed(ex);
            }
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                // Flushes what is still buffered: on a full disk that fails again, and the temp file must go anyway.
                await _stream.DisposeAsync();
            }
            catch (Exception ex) when (!_published && ex is IOException or ObjectDisposedException)
            {
            }
            finally
            {
                if (!_published)
                {
                    try
                    {
                        File.Delete(tempPath);
                    }
                    catch (DirectoryNotFoundException)
                    {
                        // The export was deleted meanwhile (a cancel), and its directory with it.
                    }
                }
            }
        }
    }
}
