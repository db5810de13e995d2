using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Helios.Api.Tests;

/// <summary>The Api on a fake clock: its exports never finish (each batch waits on the fake clock), so polls stay
/// "in progress" for as long as the test likes.</summary>
public sealed class FakeClockEmbeddedFactory : HeliosApiFactory
{
    public FakeClockEmbeddedFactory()
    {
        Settings["Helios:Export:DelayPerBatch"] = "00:00:10";
        Settings["Helios:Export:RetryAfterSeconds"] = "2";
    }

    public FakeTimeProvider Clock { get; } = new(DateTimeOffset.UtcNow);

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.ConfigureTestServices(services => services.AddSingleton<TimeProvider>(Clock));
    }
}

/// <summary>A client polling faster than the Retry-After it was given gets 429 with a new Retry-After (Bulk Data IG
/// SHOULD); polling at the pace it was told is served.</summary>
public sealed class PollThrottleTests(FakeClockEmbeddedFactory factory) : IClassFixture<FakeClockEmbeddedFactory>
{
    [Fact]
    public async Task PollingFasterThanRetryAfter_Gets429_PollingAtThatPaceIsServed()
    {
        var client = new ExportClient(factory.CreateClient());
        await ExportSeed.WriteAsync(factory, new Hl7.Fhir.Model.Patient { Id = "throttle-p" });
        var statusUrl = await client.KickoffAsync("/$export?_type=Patient");

        var first = await client.PollAsync(statusUrl);
        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal("2", first.Headers.GetValues("Retry-After").Single());

        var tooSoon = await client.PollAsync(statusUrl);
        Assert.Equal((HttpStatusCode)429, tooSoon.StatusCode);
        Assert.Equal("2", tooSoon.Headers.GetValues("Retry-After").Single());
        Assert.Contains("Retry-After", await tooSoon.OutcomeTextAsync(), StringComparison.Ordinal);

        factory.Clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(HttpStatusCode.Accepted, (await client.PollAsync(statusUrl)).StatusCode);

        // Cancelling is not a poll: it is always answered.
        Assert.Equal(HttpStatusCode.Accepted, (await client.Api.DeleteAsync(statusUrl)).StatusCode);
    }
}
