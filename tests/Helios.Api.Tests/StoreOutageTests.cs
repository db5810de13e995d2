using System.Net;
using System.Text.Json;
using Helios.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace Helios.Api.Tests;

/// <summary>postgres-s3 on a PostgreSQL server of its own, which the test stops and starts.</summary>
public sealed class PostgresOutageFactory : HeliosApiFactory
{
    public PostgresOutageFactory()
        : base(postgres: true)
    {
        ExportTestSettings.Apply(this, slow: true);
        Settings["Helios:Export:MaxAttempts"] = "10";
    }

    public PostgresServer Postgres => PostgresHost!;

    public override async Task InitializeAsync()
    {
        PostgresHost = await PostgresServer.StartDedicatedAsync();
        await base.InitializeAsync();
    }

    protected override async Task DisposeExtrasAsync() => await PostgresHost!.DisposeAsync();
}

/// <summary>
/// The database goes away in the middle of an export (a fast shutdown, as in a restart or failover) and comes back:
/// while it is down, kick-offs and polls get 503 with Retry-After and an OperationOutcome, quickly; afterwards the
/// export completes with every resource exactly once.
/// </summary>
public sealed class StoreOutageTests(PostgresOutageFactory factory) : IClassFixture<PostgresOutageFactory>
{
    [Fact]
    public async Task PostgresRestartedMidExport_RequestsGet503_AndTheExportCompletesExactly()
    {
        await ExportSeed.EnsureAsync(factory);
        var expected = await factory.Services.GetRequiredService<IResourceStore>().CountByTypeAsync(CancellationToken.None);
        // Downloads are redirected to presigned S3 URLs, which the in-memory test client must not follow itself.
        var client = new ExportClient(factory.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { AllowAutoRedirect = false }), ExportDiagnostics.For(factory));
        var statusUrl = await client.KickoffAsync("/$export");

        // Wait until the export is under way (some of it committed), then take the database away.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var poll = await client.PollAsync(statusUrl);
            Assert.Equal(HttpStatusCode.Accepted, poll.StatusCode);
            if (poll.Headers.TryGetValues("X-Progress", out var progress) && !progress.First().StartsWith("0%", StringComparison.Ordinal) && progress.First().Contains('%'))
            {
                break;
            }

            Assert.True(DateTime.UtcNow < deadline, "the export made no progress");
            await Task.Delay(100);
        }

        await factory.Postgres.StopAsync();
        try
        {
            foreach (var request in new Func<Task<HttpResponseMessage>>[]
            {
                () => client.PollAsync(statusUrl),
                () => client.SendKickoffAsync("/$export?_type=Patient"),
                () => client.Api.GetAsync("/Patient?_count=1"),
            })
            {
                var started = DateTime.UtcNow;
                var response = await request();
                Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(20), "a request during the outage hung");
                var body = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{(int)response.StatusCode}: {body}");
                Assert.Equal("5", response.Headers.GetValues("Retry-After").Single());
                var outcome = JsonDocument.Parse(body).RootElement;
                Assert.Equal("OperationOutcome", outcome.GetProperty("resourceType").GetString());
                var diagnostics = outcome.GetProperty("issue")[0].GetProperty("diagnostics").GetString()!;
                Assert.Contains("database is not reachable", diagnostics, StringComparison.Ordinal);
                Assert.DoesNotContain("   at ", diagnostics, StringComparison.Ordinal);
            }

            await Task.Delay(TimeSpan.FromSeconds(3));
        }
        finally
        {
            await factory.Postgres.StartAgainAsync();
        }

        var manifest = await client.WaitForManifestAsync(statusUrl, TimeSpan.FromSeconds(120));
        var lines = await client.DownloadOutputAsync(manifest);
        ExportClient.AssertExactlyOnce(expected, lines);
    }
}
