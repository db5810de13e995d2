namespace Helios.Export.Files;

/// <summary>
/// Where export files live (local directory or S3). A part is written under a temporary name and becomes visible
/// only when published, atomically (a rename, or a completed multipart upload).
/// </summary>
public interface IExportFileStore
{
    Task<IExportPartWriter> CreateAsync(string jobId, string fileName, CancellationToken cancellationToken);

    Task DeleteFileAsync(string jobId, string fileName, CancellationToken cancellationToken);

    /// <summary>Deletes everything stored for the job, including parts no row points at (a stale worker's).</summary>
    Task DeleteJobAsync(string jobId, CancellationToken cancellationToken);

    /// <summary>Deletes everything stored for the job except <paramref name="keep"/>: parts of failed attempts and stale
    /// workers, temp files, unfinished multipart uploads. Returns how many were removed.</summary>
    Task<int> DeleteUnreferencedAsync(string jobId, IReadOnlySet<string> keep, CancellationToken cancellationToken);

    /// <summary>Names of everything stored for the job (published parts, and temp files of parts being written).</summary>
    Task<IReadOnlyList<string>> ListAsync(string jobId, CancellationToken cancellationToken);

    /// <summary>Throws when the store cannot be reached (the health probe): the bucket answers a listing, or the
    /// directory exists.</summary>
    Task CheckAvailableAsync(CancellationToken cancellationToken);

    /// <summary>Whether files can be handed out as presigned URLs.</summary>
    bool CanPresign { get; }

    /// <summary>A short-lived URL that downloads the file without other credentials.</summary>
    Task<Uri> GetPresignedUrlAsync(string jobId, string fileName, TimeSpan lifetime, CancellationToken cancellationToken);

    /// <summary>The file's local path, for streaming with range support (null when the store is remote).</summary>
    string? GetLocalPath(string jobId, string fileName);
}
