using System.Net;
using Helios.Export.Adapters.FileStores;
using Helios.Export.Engine;
using Helios.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Helios.Api.Tests;

/// <summary>/health reports what the process depends on: the export store, the file store and (where it runs
/// workers) its Hangfire server.</summary>
public sealed class HealthTests(EmbeddedExportFactory embedded, PostgresS3ExportFactory postgresS3) : IClassFixture<EmbeddedExportFactory>, IClassFixture<PostgresS3ExportFactory>
{
    [Fact]
    public async Task Health_IsHealthy_OnBothTopologies()
    {
        foreach (var client in new[] { embedded.CreateClient(), postgresS3.CreateClient() })
        {
            // The Hangfire server registers itself asynchronously after start.
            HttpResponseMessage response;
            var deadline = DateTime.UtcNow.AddSeconds(30);
            do
            {
                response = await client.GetAsync("/health");
            }
            while (response.StatusCode != HttpStatusCode.OK && DateTime.UtcNow < deadline && await Delay());

            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("Healthy", await response.Content.ReadAsStringAsync());
        }

        static async Task<bool> Delay()
        {
            await Task.Delay(200);
            return true;
        }
    }

    [Fact]
    public async Task FileStoreCheck_IsUnhealthy_WhenTheDirectoryIsGone()
    {
        var directory = Path.Combine(Path.GetTempPath(), "helios-health-" + Guid.NewGuid().ToString("N"));
        var store = new LocalExportFileStore(directory);
        var check = new ExportFileStoreHealthCheck(store);
        Assert.Equal(HealthStatus.Healthy, (await check.CheckHealthAsync(Context(check))).Status);

        Directory.Delete(directory);
        var result = await check.CheckHealthAsync(Context(check));
        Assert.Equal(HealthStatus.Unhealthy, result.Status);
        Assert.Contains(directory, result.Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HangfireCheck_IsUnhealthy_WithoutThisProcesssServer()
    {
        // The running host's storage (its own server is registered there), asked for a server that never started.
        var storage = embedded.Services.GetRequiredService<Hangfire.JobStorage>();
        var check = new HangfireServerHealthCheck(storage, new ExportWorkerIdentity(), TimeProvider.System);
        var result = await check.CheckHealthAsync(Context(check));
        Assert.Equal(HealthStatus.Unhealthy, result.Status);
        Assert.Contains("has not registered", result.Description, StringComparison.Ordinal);
    }

    private static HealthCheckContext Context(IHealthCheck check) =>
        new() { Registration = new HealthCheckRegistration("test", check, HealthStatus.Unhealthy, null) };
}
