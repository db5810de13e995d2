using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Helios.Testing;

namespace Helios.Export.Tests;

/// <summary>
/// The test S3 server (s3rver behind <c>tests/tools/s3rver-for-test.js</c>) must outlive what the export engine does
/// to it, or a run fails for the tool's sake. An abort that removed an upload's folder while a part was being written
/// into it ended the server (an uncaught ENOENT; the churn bench's cancels hit it), or answered 500. Each round here
/// uploads parts while the upload is aborted: every part is stored or refused with NoSuchUpload, and afterwards the
/// server still answers.
/// </summary>
public sealed class S3TestServerTests
{
    [Fact]
    public async Task AnAbortWhilePartsUpload_LeavesTheServerRunning_AndThePartsAnswerNoSuchUpload()
    {
        await using var server = await S3Server.StartDedicatedAsync();
        using var s3 = new AmazonS3Client(new BasicAWSCredentials(server.AccessKey, server.SecretKey),
            new AmazonS3Config { ServiceURL = server.Url, ForcePathStyle = true, MaxErrorRetry = 0 });
        var bucket = server.NewBucketName();
        await s3.PutBucketAsync(bucket);
        var part = new byte[256 * 1024];
        Random.Shared.NextBytes(part);
        for (var round = 0; round < 30; round++)
        {
            var key = $"exports/job/Patient-{round:D4}.ndjson";
            var upload = await s3.InitiateMultipartUploadAsync(bucket, key);
            var parts = Enumerable.Range(1, 8).Select(async n =>
            {
                try
                {
                    await s3.UploadPartAsync(new UploadPartRequest
                    {
                        BucketName = bucket, Key = key, UploadId = upload.UploadId, PartNumber = n, InputStream = new MemoryStream(part),
                    });
                }
                catch (AmazonS3Exception ex) when (ex.ErrorCode == "NoSuchUpload")
                {
                    // Arrived once the abort had begun, as S3 answers. Anything else (a 500) fails the test; before
                    // the fix these rounds gave 500s or ended the server.
                }
            }).ToList();
            await Task.Delay(round % 5);
            await s3.AbortMultipartUploadAsync(bucket, key, upload.UploadId);
            await Task.WhenAll(parts);
        }

        // Still serving, and nothing of the aborted uploads left.
        await s3.PutObjectAsync(new PutObjectRequest { BucketName = bucket, Key = "after", ContentBody = "still here" });
        Assert.Empty((await s3.ListMultipartUploadsAsync(bucket)).MultipartUploads ?? []);
    }
}
