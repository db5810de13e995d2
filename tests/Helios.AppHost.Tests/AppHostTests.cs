using System.Net;
using Aspire.Hosting.Testing;

namespace Helios.AppHost.Tests;

/// <summary>Starts the real AppHost in its embedded mode (DCP, the Api as a project resource) and talks to the Api.</summary>
public sealed class AppHostTests
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task AppHost_StartsTheApi_AndItServesMetadataAndWrites()
    {
        var dataDirectory = Path.Combine(Path.GetTempPath(), "helios-apphost-" + Guid.NewGuid().ToString("N")[..8]);
        using var cts = new CancellationTokenSource(s_timeout);
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Helios_AppHost>(
            ["--Helios:Infrastructure=embedded", $"--Helios:DataDirectory={dataDirectory}", "--DcpPublisher:ContainerRuntimeInitializationTimeout=00:00:00"], cts.Token);
        await using var app = await builder.BuildAsync(cts.Token).WaitAsync(s_timeout, cts.Token);
        await app.StartAsync(cts.Token).WaitAsync(s_timeout, cts.Token);
        await app.ResourceNotifications.WaitForResourceHealthyAsync("helios-api", cts.Token).WaitAsync(s_timeout, cts.Token);

        using var client = app.CreateHttpClient("helios-api");
        var metadata = await client.GetAsync("/metadata", cts.Token);
        Assert.Equal(HttpStatusCode.OK, metadata.StatusCode);
        Assert.Contains("CapabilityStatement", await metadata.Content.ReadAsStringAsync(cts.Token));

        var created = await client.PostAsync("/Patient", new StringContent("""{"resourceType":"Patient","name":[{"family":"Aspire"}]}""", System.Text.Encoding.UTF8, "application/fhir+json"), cts.Token);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var search = await client.GetStringAsync("/Patient?family=aspire&_summary=count", cts.Token);
        Assert.Contains("\"total\":1", search);

        await app.StopAsync(cts.Token);
        Assert.True(File.Exists(Path.Combine(dataDirectory, "helios.db")));
        try
        {
            Directory.Delete(dataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
