using System.Buffers;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Helios.Export.Files;
using Helios.Export.Requests;

namespace Helios.Export.Adapters.FileStores;

/// <summary>
/// Export files in an S3-compatible bucket (path-style addressing, so MinIO and emulators work). Parts stream up in
/// multipart uploads of bounded buffers; an object appears only when its upload completes. Payload chunk signing is
/// off because emulators store aws-chunked bodies verbatim; TransferUtility is not used for the same reason.
/// </summary>
public sealed class S3ExportFileStore : IExportFileStore, IDisposable
{
    private readonly AmazonS3Client _client;
    private readonly S3Options _options;
    private readonly bool _http;

    public S3ExportFileStore(S3Options options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        var config = new AmazonS3Config
        {
            ServiceURL = options.ServiceUrl,
            ForcePathStyle = true,
            AuthenticationRegion = options.Region,
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        };
        _http = options.ServiceUrl?.StartsWith("http://", StringComparison.OrdinalIgnoreCase) == true;
        _client = new AmazonS3Client(new BasicAWSCredentials(options.AccessKey, options.SecretKey), config);
    }

    public bool CanPresign => true;

    public async Task EnsureBucketAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _client.PutBucketAsync(new PutBucketRequest { BucketName = _options.Bucket }, cancellationToken);
        }
        catch (AmazonS3Exception ex) when (ex.ErrorCode is "BucketAlreadyOwnedByYou" or "BucketAlreadyExists")
        {
        }
    }

    public Task<IExportPartWriter> CreateAsync(string jobId, string fileName, CancellationToken cancellationToken) =>
        Task.FromResult<IExportPartWriter>(new Writer(this, Key(jobId, fileName)));

    public async Task DeleteFileAsync(string jobId, string fileName, CancellationToken cancellationToken) =>
        await _client.DeleteObjectAsync(_options.Bucket, Key(jobId, fileName), cancellationToken);

    public async Task CheckAvailableAsync(CancellationToken cancellationToken) =>
        await _client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = _options.Bucket, Prefix = _options.Prefix, MaxKeys = 1 }, cancellationToken);

    public async Task<IReadOnlyList<string>> ListAsync(string jobId, CancellationToken cancellationToken)
    {
        var prefix = $"{_options.Prefix}{jobId}/";
        var names = new List<string>();
        var request = new ListObjectsV2Request { BucketName = _options.Bucket, Prefix = prefix, MaxKeys = 1000 };
        while (true)
        {
            var page = await _client.ListObjectsV2Async(request, cancellationToken);
            names.AddRange((page.S3Objects ?? []).Select(o => o.Key[prefix.Length..]));
            if (page.IsTruncated != true)
            {
                return names;
            }

            request.ContinuationToken = page.NextContinuationToken;
        }
    }

    public async Task DeleteJobAsync(string jobId, CancellationToken cancellationToken) =>
        await DeleteUnreferencedAsync(jobId, new HashSet<string>(), cancellationToken);

    public async Task<int> DeleteUnreferencedAsync(string jobId, IReadOnlySet<string> keep, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keep);
        var prefix = $"{_options.Prefix}{jobId}/";
        var removed = await AbortUploadsAsync(prefix, cancellationToken);
        var request = new ListObjectsV2Request { BucketName = _options.Bucket, Prefix = prefix, MaxKeys = 1000 };
        while (true)
        {
            var page = await _client.ListObjectsV2Async(request, cancellationToken);
            var doomed = (page.S3Objects ?? []).Where(o => !keep.Contains(o.Key[prefix.Length..])).Select(o => new KeyVersion { Key = o.Key }).ToList();
            if (doomed.Count > 0)
            {
                await _client.DeleteObjectsAsync(new DeleteObjectsRequest { BucketName = _options.Bucket, Objects = doomed }, cancellationToken);
                removed += doomed.Count;
            }

            if (page.IsTruncated != true)
            {
                return removed;
            }

            request.ContinuationToken = page.NextContinuationToken;
        }
    }

    /// <summary>Aborts the unfinished multipart uploads under the prefix: a writer that could not abort its own upload
    /// (the store was unreachable, or the process died) leaves one, invisible to listings but holding storage.</summary>
    private async Task<int> AbortUploadsAsync(string prefix, CancellationToken cancellationToken)
    {
        var aborted = 0;
        var request = new ListMultipartUploadsRequest { BucketName = _options.Bucket, Prefix = prefix };
        while (true)
        {
            var page = await _client.ListMultipartUploadsAsync(request, cancellationToken);
            foreach (var upload in page.MultipartUploads ?? [])
            {
                try
                {
                    await _client.AbortMultipartUploadAsync(_options.Bucket, upload.Key, upload.UploadId, cancellationToken);
                    aborted++;
                }
                catch (AmazonS3Exception ex) when (ex.StatusCode == System.Net.HttpStatusCode.NotFound)
                {
                    // Completed or aborted meanwhile.
                }
            }

            if (page.IsTruncated != true)
            {
                return aborted;
            }

            request.KeyMarker = page.NextKeyMarker;
            request.UploadIdMarker = page.NextUploadIdMarker;
        }
    }

    /// <summary>The unfinished multipart uploads under the job's prefix (keys relative to it), for checks and tests.</summary>
    public async Task<IReadOnlyList<string>> ListUnfinishedUploadsAsync(string jobId, CancellationToken cancellationToken)
    {
        var prefix = $"{_options.Prefix}{jobId}/";
        var page = await _client.ListMultipartUploadsAsync(new ListMultipartUploadsRequest { BucketName = _options.Bucket, Prefix = prefix }, cancellationToken);
        return (page.MultipartUploads ?? []).Select(u => u.Key[prefix.Length..]).ToList();
    }

    public async Task<Uri> GetPresignedUrlAsync(string jobId, string fileName, TimeSpan lifetime, CancellationToken cancellationToken)
    {
        var url = await _client.GetPreSignedURLAsync(new GetPreSignedUrlRequest
        {
            BucketName = _options.Bucket,
            Key = Key(jobId, fileName),
            Verb = HttpVerb.GET,
            Expires = DateTime.UtcNow.Add(lifetime),
            Protocol = _http ? Protocol.HTTP : Protocol.HTTPS,
            ResponseHeaderOverrides = { ContentType = ExportFormats.FhirNdjson },
        });
        return new Uri(url);
    }

    public string? GetLocalPath(string jobId, string fileName) => null;

    public void Dispose() => _client.Dispose();

    private string Key(string jobId, string fileName) => $"{_options.Prefix}{jobId}/{fileName}";

    /// <summary>Streams one part object up. Double-buffered: when a buffer fills, its upload starts and writing goes on
    /// into the other buffer, so reading the store overlaps the network; at most one upload per writer is in flight and
    /// at most two buffers are held.</summary>
    private sealed class Writer(S3ExportFileStore store, string key) : IExportPartWriter
    {
        private readonly List<PartETag> _parts = [];
        private byte[] _buffer = ArrayPool<byte>.Shared.Rent(store._options.UploadPartBytes);
        private byte[]? _spare;
        private int _filled;
        private int _partCount;
        private string? _uploadId;
        private Task? _inFlight;
        private bool _published;

        public long BytesWritten { get; private set; }

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            while (data.Length > 0)
            {
                var n = Math.Min(data.Length, store._options.UploadPartBytes - _filled);
                data.Span[..n].CopyTo(_buffer.AsSpan(_filled));
                _filled += n;
                BytesWritten += n;
                data = data[n..];
                if (_filled == store._options.UploadPartBytes)
                {
                    try
                    {
                        await StartPartUploadAsync(cancellationToken);
                    }
                    catch (Exception ex) when (IsStoreFailure(ex, cancellationToken))
                    {
                        throw Failed(ex);
                    }
                }
            }
        }

        /// <summary>The server refused, or could not be reached (after the SDK's own retries), or an HTTP timeout that
        /// is not the caller's cancellation.</summary>
        private static bool IsStoreFailure(Exception ex, CancellationToken cancellationToken) =>
            ex is AmazonServiceException or HttpRequestException or IOException or System.Net.Sockets.SocketException
            || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested);

        private static ExportFileStoreException Failed(Exception ex) =>
            new($"The S3 file store did not take the export's files: {ex.Message}", ex);

        /// <summary>Hands the full buffer to a background upload and continues in the spare one.</summary>
        private async Task StartPartUploadAsync(CancellationToken cancellationToken)
        {
            await WaitForInFlightAsync();
            _uploadId ??= (await store._client.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest
            {
                BucketName = store._options.Bucket,
                Key = key,
                ContentType = ExportFormats.FhirNdjson,
            }, cancellationToken)).UploadId;
            var full = _buffer;
            _inFlight = UploadPartAsync(full, _filled, ++_partCount, cancellationToken);
            _buffer = _spare ?? ArrayPool<byte>.Shared.Rent(store._options.UploadPartBytes);
            _spare = null;
            _filled = 0;
        }

        private async Task UploadPartAsync(byte[] buffer, int length, int partNumber, CancellationToken cancellationToken)
        {
            using (var body = new MemoryStream(buffer, 0, length, writable: false))
            {
                var response = await store._client.UploadPartAsync(new UploadPartRequest
                {
                    BucketName = store._options.Bucket,
                    Key = key,
                    UploadId = _uploadId,
                    PartNumber = partNumber,
                    InputStream = body,
                    PartSize = length,
                    UseChunkEncoding = false,
                }, cancellationToken);
                _parts.Add(new PartETag(partNumber, response.ETag));
            }

            _spare = buffer;
        }

        /// <summary>Waits for the upload in flight; its failure surfaces here, at the next write or the publish.</summary>
        private async Task WaitForInFlightAsync()
        {
            if (_inFlight is { } task)
            {
                _inFlight = null;
                await task;
            }
        }

        public async Task PublishAsync(CancellationToken cancellationToken)
        {
            try
            {
                await PublishCoreAsync(cancellationToken);
            }
            catch (Exception ex) when (IsStoreFailure(ex, cancellationToken))
            {
                throw Failed(ex);
            }
        }

        private async Task PublishCoreAsync(CancellationToken cancellationToken)
        {
            await WaitForInFlightAsync();
            if (_uploadId is null)
            {
                using var body = new MemoryStream(_buffer, 0, _filled, writable: false);
                await store._client.PutObjectAsync(new PutObjectRequest
                {
                    BucketName = store._options.Bucket,
                    Key = key,
                    InputStream = body,
                    ContentType = ExportFormats.FhirNdjson,
                    UseChunkEncoding = false,
                    AutoCloseStream = false,
                }, cancellationToken);
            }
            else
            {
                if (_filled > 0)
                {
                    await UploadPartAsync(_buffer, _filled, ++_partCount, cancellationToken);
                    _spare = null; // the same array as _buffer: returned once, below
                }

                await store._client.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest
                {
                    BucketName = store._options.Bucket,
                    Key = key,
                    UploadId = _uploadId,
                    PartETags = _parts,
                }, cancellationToken);
            }

            _published = true;
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                await WaitForInFlightAsync();
            }
            catch (Exception ex) when (ex is AmazonServiceException or OperationCanceledException or IOException or HttpRequestException)
            {
                // The part upload that failed is reported by the write or publish that awaited it, or the run was
                // cancelled; the upload is aborted below either way.
            }

            if (!_published && _uploadId is not null)
            {
                try
                {
                    await store._client.AbortMultipartUploadAsync(store._options.Bucket, key, _uploadId, CancellationToken.None);
                }
                catch (Exception ex) when (ex is AmazonServiceException or HttpRequestException or IOException or OperationCanceledException)
                {
                    // The store is unreachable or refuses: the upload stays, invisible to listings, until the export
                    // completes, fails or expires, when every unfinished upload under its prefix is aborted.
                }
            }

            ArrayPool<byte>.Shared.Return(_buffer);
            if (_spare is not null && !ReferenceEquals(_spare, _buffer))
            {
                ArrayPool<byte>.Shared.Return(_spare);
            }

            _buffer = [];
            _spare = null;
        }
    }
}
