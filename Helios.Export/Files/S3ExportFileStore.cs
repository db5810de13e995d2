using System.Buffers;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;

namespace Helios.Export.Files;

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

    public async Task DeleteJobAsync(string jobId, CancellationToken cancellationToken)
    {
        var request = new ListObjectsV2Request { BucketName = _options.Bucket, Prefix = $"{_options.Prefix}{jobId}/", MaxKeys = 1000 };
        while (true)
        {
            var page = await _client.ListObjectsV2Async(request, cancellationToken);
            if (page.S3Objects is { Count: > 0 } objects)
            {
                await _client.DeleteObjectsAsync(new DeleteObjectsRequest
                {
                    BucketName = _options.Bucket,
                    Objects = objects.Select(o => new KeyVersion { Key = o.Key }).ToList(),
                }, cancellationToken);
            }

            if (page.IsTruncated != true)
            {
                return;
            }

            request.ContinuationToken = page.NextContinuationToken;
        }
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

    private sealed class Writer(S3ExportFileStore store, string key) : IExportPartWriter
    {
        private readonly List<PartETag> _parts = [];
        private byte[] _buffer = ArrayPool<byte>.Shared.Rent(store._options.UploadPartBytes);
        private int _filled;
        private string? _uploadId;
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
                    await UploadPartAsync(cancellationToken);
                }
            }
        }

        private async Task UploadPartAsync(CancellationToken cancellationToken)
        {
            _uploadId ??= (await store._client.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest
            {
                BucketName = store._options.Bucket,
                Key = key,
                ContentType = ExportFormats.FhirNdjson,
            }, cancellationToken)).UploadId;
            using var body = new MemoryStream(_buffer, 0, _filled, writable: false);
            var response = await store._client.UploadPartAsync(new UploadPartRequest
            {
                BucketName = store._options.Bucket,
                Key = key,
                UploadId = _uploadId,
                PartNumber = _parts.Count + 1,
                InputStream = body,
                PartSize = _filled,
                UseChunkEncoding = false,
            }, cancellationToken);
            _parts.Add(new PartETag(_parts.Count + 1, response.ETag));
            _filled = 0;
        }

        public async Task PublishAsync(CancellationToken cancellationToken)
        {
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
                    await UploadPartAsync(cancellationToken);
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
            if (!_published && _uploadId is not null)
            {
                try
                {
                    await store._client.AbortMultipartUploadAsync(store._options.Bucket, key, _uploadId, CancellationToken.None);
                }
                catch (AmazonServiceException)
                {
                    // An unfinished upload is invisible; the bucket's lifecycle rules or the next job cleanup remove it.
                }
            }

            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
    }
}
