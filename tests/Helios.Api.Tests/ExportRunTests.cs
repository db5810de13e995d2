using System.Net;
using System.Text.Json;
using Helios.Export.Files;
using Helios.Storage;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Task = System.Threading.Tasks.Task;

namespace Helios.Api.Tests;

/// <summary>Exports observed while they run (each batch read is slowed down): snapshot isolation, cancel, limits.</summary>
public abstract class ExportRunContract<TFactory>(TFactory factory) : IClassFixture<TFactory>, IAsyncLifetime
    where TFactory : HeliosApiFactory
{
    private readonly ExportClient _client = new(factory.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false }), ExportDiagnostics.For(factory));

    public Task InitializeAsync() => ExportSeed.EnsureAsync(factory);

    public Task DisposeAsync() => Task.CompletedTask;

    private static string JobId(string statusUrl) => statusUrl[(statusUrl.LastIndexOf('/') + 1)..];

    [Fact]
    public async Task Snapshot_ChangesAfterKickoff_AreNotExported()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        await ExportSeed.WriteAsync(factory, new Patient { Id = $"s{tag}-1", Name = [new HumanName { Family = "Before" }] });
        await ExportSeed.WriteAsync(factory, new Observation
        {
            Id = $"s{tag}-obs", Status = ObservationStatus.Final, Code = new CodeableConcept("http://loinc.org", "8302-2"),
            Subject = new ResourceReference($"Patient/s{tag}-1"),
        });

        var statusUrl = await _client.KickoffAsync("/$export?_type=Patient,Observation");
        var store = factory.Services.GetRequiredService<IResourceStore>();
        await store.WriteAsync(
        [
            ResourceWrite.Update(new Patient { Id = $"s{tag}-1", Name = [new HumanName { Family = "After" }] }),
            ResourceWrite.Delete("Observation", $"s{tag}-obs"),
            ResourceWrite.Create(new Patient { Id = $"s{tag}-new" }),
        ], CancellationToken.None);
        Assert.Equal(HttpStatusCode.Accepted, (await _client.PollAsync(statusUrl)).StatusCode);

        var manifest = await _client.WaitForManifestAsync(statusUrl);
        var transactionTime = DateTimeOffset.Parse(manifest.GetProperty("transactionTime").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        var lines = await _client.DownloadOutputAsync(manifest);
        var ids = ExportClient.IdsByType(lines);
        var patient = lines["Patient"].Single(p => p.GetProperty("id").GetString() == $"s{tag}-1");
        Assert.Equal("Before", patient.GetProperty("name")[0].GetProperty("family").GetString());
        Assert.Equal("1", patient.GetProperty("meta").GetProperty("versionId").GetString());
        Assert.Contains($"s{tag}-obs", ids["Observation"]);
        Assert.DoesNotContain($"s{tag}-new", ids["Patient"]);
        Assert.All(lines.Values.SelectMany(l => l), r =>
            Assert.True(DateTimeOffset.Parse(r.GetProperty("meta").GetProperty("lastUpdated").GetString()!, System.Globalization.CultureInfo.InvariantCulture) <= transactionTime));
    }

    [Fact]
    public async Task Cancel_MidExport_StopsWork_RemovesFiles_AndLaterPollsAre404()
    {
        var statusUrl = await _client.KickoffAsync("/$export");
        var jobId = JobId(statusUrl);
        var files = factory.Services.GetRequiredService<IExportFileStore>();
        var jobs = factory.Services.GetRequiredService<IExportJobStore>();

        // Wait until some parts are committed, so the cancel really lands mid-export.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((await jobs.GetFilesAsync(jobId, CancellationToken.None)).Count == 0)
        {
            if (DateTime.UtcNow > deadline)
            {
                await _client.Api.DeleteAsync(statusUrl);
                Assert.Fail("no part was committed within 60 s: " + string.Join(", ", (await _client.PollAsync(statusUrl)).Headers.Select(h => $"{h.Key}={string.Join(",", h.Value)}")));
            }

            await Task.Delay(50);
        }

        Assert.Equal(HttpStatusCode.Accepted, (await _client.PollAsync(statusUrl)).StatusCode);
        var cancel = await _client.Api.DeleteAsync(statusUrl);
        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);

        var poll = await _client.PollAsync(statusUrl);
        Assert.Equal(HttpStatusCode.NotFound, poll.StatusCode);
        await poll.OutcomeTextAsync();
        Assert.Equal(HttpStatusCode.NotFound, (await _client.Api.DeleteAsync(statusUrl)).StatusCode);

        // Running partitions notice at their next heartbeat and stop; the supervisor then deletes files and rows.
        deadline = DateTime.UtcNow.AddSeconds(20);
        while (await jobs.GetJobAsync(jobId, CancellationToken.None) is not null || (await files.ListAsync(jobId, CancellationToken.None)).Count > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the cancelled export's files or rows were not removed");
            await Task.Delay(100);
        }

        // Nothing may come back: once no Hangfire job of this host is processing any more (the cancelled export's runs
        // have all returned), the export still has no file.
        var monitoring = factory.Services.GetRequiredService<Hangfire.JobStorage>().GetMonitoringApi();
        deadline = DateTime.UtcNow.AddSeconds(20);
        while (monitoring.ProcessingCount() > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "runs of the cancelled export were still processing after 20 s");
            await Task.Delay(50);
        }

        Assert.Empty(await files.ListAsync(jobId, CancellationToken.None));
    }

    [Fact]
    public async Task ConcurrentExports_AreLimitedPerClient_With429()
    {
        var running = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            running.Add(await _client.KickoffAsync("/$export"));
        }

        try
        {
            var refused = await _client.SendKickoffAsync("/$export");
            Assert.Equal((HttpStatusCode)429, refused.StatusCode);
            Assert.True(refused.Headers.RetryAfter?.Delta > TimeSpan.Zero);
            Assert.Contains("already has 3 exports", await refused.OutcomeTextAsync());
        }
        finally
        {
            foreach (var url in running)
            {
                Assert.Equal(HttpStatusCode.Accepted, (await _client.Api.DeleteAsync(url)).StatusCode);
            }
        }

        // Cancelled (and completed) exports no longer count.
        var again = await _client.KickoffAsync("/$export?_type=Organization");
        await _client.WaitForManifestAsync(again);
        Assert.Equal(HttpStatusCode.Accepted, (await _client.Api.DeleteAsync(await _client.KickoffAsync("/$export"))).StatusCode);
    }

    [Fact]
    public async Task PartialManifests_ListCommittedFilesWhileRunning_PagesNeverChange_AndTogetherHoldEverythingOnce()
    {
        var expected = await factory.Services.GetRequiredService<IResourceStore>().CountByTypeAsync(CancellationToken.None);
        var statusUrl = await _client.KickoffAsync("/$export?allowPartialManifests=true");
        JsonElement? first = null;
        var downloadedWhileRunning = 0;
        while (first is null)
        {
            var response = await _client.PollAsync(statusUrl);
            Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"the export ended ({(int)response.StatusCode}) before a partial manifest was seen");
            if (response.Content.Headers.ContentType?.MediaType == "application/json")
            {
                var page = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
                Assert.NotEqual(0, page.GetProperty("output").GetArrayLength());
                // Listed files can be fetched at once, complete, while the export still runs.
                foreach (var file in page.GetProperty("output").EnumerateArray())
                {
                    var text = await (await _client.GetFileAsync(file.GetProperty("url").GetString()!)).Content.ReadAsStringAsync();
                    Assert.Equal(file.GetProperty("count").GetInt64(), text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
                    downloadedWhileRunning++;
                }

                first = page;
            }
            else
            {
                await Task.Delay(100);
            }
        }

        Assert.True(downloadedWhileRunning > 0);
        var final = await _client.WaitForManifestAsync(statusUrl);
        // Page 1 is what it was when first served; only a link may have been added.
        Assert.Equal(first.Value.GetProperty("output").GetRawText(), final.GetProperty("output").GetRawText());
        Assert.Equal(first.Value.GetProperty("transactionTime").GetString(), final.GetProperty("transactionTime").GetString());

        var pages = new List<JsonElement> { final };
        while (pages[^1].TryGetProperty("link", out var link))
        {
            var next = Assert.Single(link.EnumerateArray());
            Assert.Equal("next", next.GetProperty("relation").GetString());
            pages.Add(await _client.WaitForManifestAsync(next.GetProperty("url").GetString()!));
            Assert.Equal(final.GetProperty("request").GetString(), pages[^1].GetProperty("request").GetString());
            Assert.Equal(final.GetProperty("error").GetRawText(), pages[^1].GetProperty("error").GetRawText());
        }

        Assert.True(pages.Count > 1, "the files committed after the first page should be on later pages");
        var urls = pages.SelectMany(p => p.GetProperty("output").EnumerateArray()).Select(f => f.GetProperty("url").GetString()).ToList();
        Assert.Equal(urls.Count, urls.Distinct().Count());
        var ids = new Dictionary<string, HashSet<string>>();
        foreach (var page in pages)
        {
            foreach (var (type, set) in ExportClient.IdsByType(await _client.DownloadOutputAsync(page)))
            {
                var all = ids.TryGetValue(type, out var known) ? known : ids[type] = [];
                Assert.All(set, id => Assert.True(all.Add(id), $"{type}/{id} is on two pages"));
            }
        }

        foreach (var (type, count) in expected)
        {
            Assert.True(count == ids[type].Count, $"{type}: expected {count}, exported {ids.GetValueOrDefault(type)?.Count}");
        }

        var missing = await _client.PollAsync(statusUrl + "?page=" + (pages.Count + 1));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }
}

public sealed class EmbeddedExportRunTests(SlowEmbeddedExportFactory factory) : ExportRunContract<SlowEmbeddedExportFactory>(factory);

public sealed class PostgresS3ExportRunTests(SlowPostgresS3ExportFactory factory) : ExportRunContract<SlowPostgresS3ExportFactory>(factory);

/// <summary>The embedded Api stops in the middle of an export and starts again on the same data directory.</summary>
public sealed class EmbeddedRestartTests
{
    [Fact]
    public async Task Restart_MidExport_ResumesAndCompletes_WithEveryResourceOnce()
    {
        var directory = Path.Combine(Path.GetTempPath(), "helios-restart-" + Guid.NewGuid().ToString("N")[..12]);
        string statusUrl;
        IReadOnlyDictionary<string, long> expected;
        int committedBefore;
        try
        {
            var first = new SlowEmbeddedExportFactory { DataDirectory = directory, KeepData = true };
            await using (first)
            {
                await ExportSeed.EnsureAsync(first);
                expected = await first.Services.GetRequiredService<IResourceStore>().CountByTypeAsync(CancellationToken.None);
                var client = new ExportClient(first.CreateClient(), ExportDiagnostics.For(first));
                statusUrl = await client.KickoffAsync("/$export");
                var jobId = statusUrl[(statusUrl.LastIndexOf('/') + 1)..];
                var jobs = first.Services.GetRequiredService<IExportJobStore>();
                var deadline = DateTime.UtcNow.AddSeconds(30);
                while ((committedBefore = (await jobs.GetFilesAsync(jobId, CancellationToken.None)).Count) < 3)
                {
                    Assert.True(DateTime.UtcNow < deadline, "no part was committed before the restart");
                    await Task.Delay(25);
                }

                Assert.Equal(HttpStatusCode.Accepted, (await client.PollAsync(statusUrl)).StatusCode);
            }

            var second = new EmbeddedExportFactory { DataDirectory = directory };
            await using (second)
            {
                var client = new ExportClient(second.CreateClient(), ExportDiagnostics.For(second));
                var manifest = await client.WaitForManifestAsync(statusUrl);
                var ids = ExportClient.IdsByType(await client.DownloadOutputAsync(manifest));
                foreach (var (type, count) in expected)
                {
                    Assert.True(count == ids[type].Count, $"{type}: expected {count}, exported {ids.GetValueOrDefault(type)?.Count}");
                }

                Assert.True(manifest.GetProperty("output").GetArrayLength() > committedBefore);
            }
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }
}

/// <summary>Two hosts in one process keep their Hangfire work apart (storage and job activation are per host).</summary>
public sealed class TwoHostsInOneProcessTests
{
    [Fact]
    public async Task ExportsOfTwoHosts_RunOnTheirOwnHost()
    {
        await using var first = new EmbeddedExportFactory();
        await using var second = new EmbeddedExportFactory();
        await ExportSeed.EnsureAsync(first);
        await ExportSeed.EnsureAsync(second);
        await ExportSeed.WriteAsync(second, new Patient { Id = "only-on-the-second-host" });
        var clients = new[] { first, second }.Select(f => new ExportClient(f.CreateClient(), ExportDiagnostics.For(f))).ToArray();
        var urls = await Task.WhenAll(clients.Select(c => c.KickoffAsync("/$export?_type=Patient")));
        var manifests = await Task.WhenAll(clients.Zip(urls, (c, u) => c.WaitForManifestAsync(u)));
        var firstIds = ExportClient.IdsByType(await clients[0].DownloadOutputAsync(manifests[0]))["Patient"];
        var secondIds = ExportClient.IdsByType(await clients[1].DownloadOutputAsync(manifests[1]))["Patient"];
        Assert.Equal(ExportSeed.Patients, firstIds.Count);
        Assert.Equal(ExportSeed.Patients + 1, secondIds.Count);
        Assert.Contains("only-on-the-second-host", secondIds);
    }
}
