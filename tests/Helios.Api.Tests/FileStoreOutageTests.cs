using System.Net;
using System.Text.Json;
using Helios.Export.Adapters.FileStores;
using Helios.Export.Files;
using Helios.Storage;
using Helios.Storage.Synthetic;
using Microsoft.Extensions.DependencyInjection;

namespace Helios.Api.Tests;

/// <summary>postgres-s3 with an S3 server of its own, which the test stops and starts. Parts are large enough to be
/// multipart uploads (5 MiB upload parts), so an outage catches uploads half done.</summary>
public abstract class S3OutageFactory : HeliosApiFactory
{
    protected S3OutageFactory()
        : base(postgres: true)
    {
        ExportTestSettings.Apply(this, slow: false);
        Settings["Helios:Export:PartitionRows"] = "100000";
        Settings["Helios:Export:ReadBatchRows"] = "250";
        Settings["Helios:Export:MaxPartBytes"] = "67108864";
        Settings["Helios:Export:DelayPerBatch"] = "00:00:00.100";
        Settings["Helios:Export:S3:UploadPartBytes"] = "5242880";
    }

    public S3Server S3 => S3Host!;

    public S3ExportFileStore Files => (S3ExportFileStore)Services.GetRequiredService<IExportFileStore>();

    public override async Task InitializeAsync()
    {
        S3Host = await S3Server.StartDedicatedAsync();
        await base.InitializeAsync();
    }

    protected override async Task DisposeExtrasAsync() => await S3Host!.DisposeAsync();

    /// <summary>The most attempts any partition of the export took.</summary>
    public async Task<int> MaxAttemptsAsync(string jobId)
    {
        var connectionString = Services.GetRequiredService<Microsoft.Extensions.Configuration.IConfiguration>()["ConnectionStrings:helios-db"];
        await using var connection = new Npgsql.NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand("SELECT COALESCE(MAX(attempts), 0) FROM export_partitions WHERE job_id = @j", connection);
        command.Parameters.AddWithValue("j", jobId);
        return Convert.ToInt32(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public Task<Dictionary<string, long>> SeedAsync() => LargeSeed.EnsureAsync(this);
}

/// <summary>About 9 MB of Observations (one partition, one multipart file with the S3 settings above) and the rest of
/// the synthetic data of 120 patients.</summary>
internal static class LargeSeed
{
    public static async Task<Dictionary<string, long>> EnsureAsync(HeliosApiFactory factory)
    {
        var store = factory.Services.GetRequiredService<IResourceStore>();
        var counts = await store.CountByTypeAsync(CancellationToken.None);
        if (counts.Count == 0)
        {
            var generator = new SyntheticDataGenerator(11) { EncountersPerPatient = 8, ObservationsPerEncounter = 12 };
            foreach (var batch in generator.Generate(120).Chunk(2000))
            {
                await store.WriteAsync(batch.Select(r => ResourceWrite.Update(r)).ToList(), CancellationToken.None);
            }

            counts = await store.CountByTypeAsync(CancellationToken.None);
        }

        return counts.ToDictionary(c => c.Key, c => c.Value, StringComparer.Ordinal);
    }
}

/// <summary>Retries outlast a 30 s outage: up to 10 attempts, backing off from 1 s to 8 s.</summary>
public sealed class S3OutageRiddenOutFactory : S3OutageFactory
{
    public S3OutageRiddenOutFactory()
    {
        Settings["Helios:Export:MaxAttempts"] = "10";
        Settings["Helios:Export:RetryBackoff"] = "00:00:01";
        Settings["Helios:Export:MaxRetryBackoff"] = "00:00:08";
    }
}

/// <summary>Retries give up quickly (3 attempts, 0.5 s then 1 s apart), and a finished export expires after 15 s.</summary>
public sealed class S3OutageTooLongFactory : S3OutageFactory
{
    public S3OutageTooLongFactory()
    {
        Settings["Helios:Export:MaxAttempts"] = "3";
        Settings["Helios:Export:RetryBackoff"] = "00:00:00.500";
        Settings["Helios:Export:MaxRetryBackoff"] = "00:00:01";
        Settings["Helios:Export:OutputTtl"] = "00:00:15";
    }
}

internal static class S3OutageSteps
{
    /// <summary>Kicks off a system export and waits until a multipart upload of it is under way, then stops S3.</summary>
    public static async Task<(ExportClient Client, string StatusUrl, string JobId)> KickoffAndStopS3MidUploadAsync(S3OutageFactory factory)
    {
        var client = new ExportClient(factory.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { AllowAutoRedirect = false }), ExportDiagnostics.For(factory));
        var statusUrl = await client.KickoffAsync("/$export");
        var jobId = statusUrl[(statusUrl.LastIndexOf('/') + 1)..];
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((await factory.Files.ListUnfinishedUploadsAsync(jobId, CancellationToken.None)).Count == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "no multipart upload was started");
            var poll = await client.PollAsync(statusUrl);
            Assert.Equal(HttpStatusCode.Accepted, poll.StatusCode);
            await Task.Delay(50);
        }

        await factory.S3.StopAsync();
        return (client, statusUrl, jobId);
    }
}

/// <summary>
/// The S3 server goes away for 30 s in the middle of an export, with a multipart upload half done. Parts are retried
/// with backoff and the export completes with every resource exactly once; the manifest lists only whole files; the
/// bucket then holds exactly the manifest's files and no unfinished upload.
/// </summary>
public sealed class S3OutageTests(S3OutageRiddenOutFactory factory) : IClassFixture<S3OutageRiddenOutFactory>
{
    [Fact]
    public async Task S3Unreachable30sMidExport_PartsAreRetried_AndTheExportCompletesExactly()
    {
        var expected = await factory.SeedAsync();
        var (client, statusUrl, jobId) = await S3OutageSteps.KickoffAndStopS3MidUploadAsync(factory);
        var stoppedAt = DateTime.UtcNow;
        try
        {
            // Meanwhile the Api answers: polls are 202 (the export is still under way, not failed).
            while (DateTime.UtcNow - stoppedAt < TimeSpan.FromSeconds(30))
            {
                var poll = await client.PollAsync(statusUrl);
                Assert.True(poll.StatusCode == HttpStatusCode.Accepted, $"{(int)poll.StatusCode}: {await poll.Content.ReadAsStringAsync()}");
                await Task.Delay(1000);
            }
        }
        finally
        {
            await factory.S3.StartAgainAsync();
        }

        var manifest = await client.WaitForManifestAsync(statusUrl, TimeSpan.FromSeconds(180));
        var lines = await client.DownloadOutputAsync(manifest);
        ExportClient.AssertExactlyOnce(expected, lines);

        // The outage cost attempts (the retries happened), and nothing but the manifest's files is left behind.
        Assert.True(await factory.MaxAttemptsAsync(jobId) >= 2, "no partition was attempted twice: the outage was not noticed");
        var listed = manifest.GetProperty("output").EnumerateArray().Concat(manifest.GetProperty("error").EnumerateArray())
            .Select(f => f.GetProperty("url").GetString()!).Select(u => u[(u.LastIndexOf('/') + 1)..]).Order(StringComparer.Ordinal).ToList();
        var stored = (await factory.Files.ListAsync(jobId, CancellationToken.None)).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(listed, stored);
        Assert.Empty(await factory.Files.ListUnfinishedUploadsAsync(jobId, CancellationToken.None));
    }
}

/// <summary>
/// The S3 server stays away longer than the retries last: the export fails, and its status says why in an
/// OperationOutcome. Once S3 is back and the export expires, neither objects nor unfinished uploads of it are left.
/// </summary>
public sealed class S3OutageTooLongTests(S3OutageTooLongFactory factory) : IClassFixture<S3OutageTooLongFactory>
{
    [Fact]
    public async Task S3UnreachablePastTheRetryLimit_TheExportFailsWithAnOperationOutcome_AndLeavesNothingBehind()
    {
        await factory.SeedAsync();
        var (client, statusUrl, jobId) = await S3OutageSteps.KickoffAndStopS3MidUploadAsync(factory);
        HttpResponseMessage end;
        try
        {
            end = await client.WaitForEndAsync(statusUrl, TimeSpan.FromSeconds(120));
        }
        finally
        {
            await factory.S3.StartAgainAsync();
        }

        var body = await end.Content.ReadAsStringAsync();
        Assert.True(end.StatusCode == HttpStatusCode.InternalServerError, $"{(int)end.StatusCode}: {body}");
        var outcome = JsonDocument.Parse(body).RootElement;
        Assert.Equal("OperationOutcome", outcome.GetProperty("resourceType").GetString());
        var diagnostics = outcome.GetProperty("issue")[0].GetProperty("diagnostics").GetString()!;
        Assert.Contains("failed 3 times", diagnostics, StringComparison.Ordinal);
        Assert.Contains("S3 file store", diagnostics, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", diagnostics, StringComparison.Ordinal);

        // The upload the outage interrupted could not be aborted then; the expiry removes it and everything else.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((await client.PollAsync(statusUrl)).StatusCode != HttpStatusCode.NotFound)
        {
            Assert.True(DateTime.UtcNow < deadline, "the failed export did not expire");
            await Task.Delay(500);
        }

        // Expired answers 404 at once; the supervisor's next pass removes what is stored.
        while ((await factory.Files.ListAsync(jobId, CancellationToken.None)).Count + (await factory.Files.ListUnfinishedUploadsAsync(jobId, CancellationToken.None)).Count > 0)
        {
            Assert.True(DateTime.UtcNow < deadline.AddSeconds(30), "the expired export's objects or uploads were not removed: " +
                string.Join(", ", await factory.Files.ListAsync(jobId, CancellationToken.None)) + " | uploads: " +
                string.Join(", ", await factory.Files.ListUnfinishedUploadsAsync(jobId, CancellationToken.None)));
            await Task.Delay(500);
        }
    }
}
