using System.IO.Compression;

namespace Helios.Api.Export;

/// <summary>Streams a local file gzip-compressed on the fly (for a client that accepts gzip and asked for no range).</summary>
public sealed class GzipFileResult(string path, string contentType) : IResult
{
    public async Task ExecuteAsync(HttpContext httpContext)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        var response = httpContext.Response;
        response.StatusCode = 200;
        response.ContentType = contentType;
        response.Headers.ContentEncoding = "gzip";
        response.Headers.Vary = "Accept-Encoding";
        await using var source = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        await using var compressed = new GZipStream(response.Body, CompressionLevel.Fastest, leaveOpen: true);
        await source.CopyToAsync(compressed, 1 << 16, httpContext.RequestAborted);
    }
}
