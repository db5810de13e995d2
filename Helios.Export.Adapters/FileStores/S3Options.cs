using System.ComponentModel.DataAnnotations;

namespace Helios.Export.Adapters.FileStores;

/// <summary>Settings under <c>Helios:Export:S3</c> (postgres-s3 topology).</summary>
public sealed class S3Options
{
    public const string SectionName = "Helios:Export:S3";

    /// <summary>Endpoint of the S3-compatible server, e.g. http://127.0.0.1:9000 (path-style addressing is used).</summary>
    public string? ServiceUrl { get; set; }

    public string Bucket { get; set; } = "helios-exports";

    public string? AccessKey { get; set; }

    public string? SecretKey { get; set; }

    public string Region { get; set; } = "us-east-1";

    /// <summary>Prefix of every object key.</summary>
    public string Prefix { get; set; } = "exports/";

    /// <summary>Multipart upload part size (S3's minimum is 5 MiB).</summary>
    [Range(5 * 1024 * 1024, int.MaxValue)]
    public int UploadPartBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>Create the bucket at startup when it does not exist.</summary>
    public bool CreateBucket { get; set; } = true;
}
