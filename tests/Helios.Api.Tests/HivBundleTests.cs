using System.Net;
using static Helios.Api.Tests.FhirJsonHttp;

namespace Helios.Api.Tests;

/// <summary>
/// The US Core HIV set loads as its authors intended: provider batches (ifNoneExist) first, then 79 patient
/// transactions whose provider references are conditional (<c>Practitioner?identifier=...</c>).
/// </summary>
public sealed class HivBundleTests : IClassFixture<LargeBodyHeliosApiFactory>
{
    private readonly HttpClient _client;

    public HivBundleTests(LargeBodyHeliosApiFactory factory) => _client = factory.CreateClient();

    [HivDataFact]
    public async Task ProviderBatchesThenConditionalReferenceTransactions_LoadCompletely()
    {
        var bundles = Directory.GetFiles(Path.Combine(SyntheaData.HivDirectory!, "bundles"), "*.json.gz").Order(StringComparer.Ordinal).ToList();
        var providers = bundles.Where(f => !Path.GetFileName(f).StartsWith("patient-", StringComparison.Ordinal)).ToList();
        var hospitals = providers.Where(f => Path.GetFileName(f).StartsWith("hospital", StringComparison.Ordinal));
        foreach (var file in providers.Concat(hospitals).Concat(bundles.Except(providers)))
        {
            // The hospital batch goes twice: its Organizations and Locations carry ifNoneExist, so the second pass
            // must create nothing. (PractitionerRoles carry none, so that batch goes once.)
            var response = await _client.SendAsync(Request(HttpMethod.Post, "/", SyntheaData.ReadText(file)));
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{Path.GetFileName(file)}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            var body = await response.JsonAsync();
            var failed = body.GetProperty("entry").EnumerateArray().Where(e => !e.GetProperty("response").GetProperty("status").GetString()!.StartsWith('2')).ToList();
            Assert.True(failed.Count == 0, $"{Path.GetFileName(file)}: {failed.Count} entries failed, e.g. {(failed.Count > 0 ? failed[0].ToString() : "")}");
        }

        // Expected counts come from the NDJSON copy of the same data (deduplicated by its authors).
        foreach (var ndjson in Directory.GetFiles(Path.Combine(SyntheaData.HivDirectory!, "ndjson"), "*.ndjson.gz"))
        {
            var type = Path.GetFileName(ndjson).Split('.')[0];
            var expected = SyntheaData.ReadText(ndjson).Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
            var total = (await (await _client.GetAsync($"/{type}?_summary=count")).JsonAsync()).GetProperty("total").GetInt64();
            Assert.True(expected == total, $"{type}: expected {expected}, server has {total}");
        }

        // Conditional references became plain Type/id references to resources that exist.
        var encounters = await (await _client.GetAsync("/Encounter?_count=50&_include=Encounter:service-provider&_include=Encounter:practitioner")).JsonAsync();
        var entries = encounters.GetProperty("entry").EnumerateArray().ToList();
        var matches = entries.Where(e => e.GetProperty("search").GetProperty("mode").GetString() == "match").ToList();
        Assert.All(matches, e => Assert.Matches("^Organization/[0-9a-f-]{36}$", e.GetProperty("resource").GetProperty("serviceProvider").GetProperty("reference").GetString()));
        Assert.Contains(entries, e => e.GetProperty("resource").GetProperty("resourceType").GetString() == "Organization");
        Assert.Contains(entries, e => e.GetProperty("resource").GetProperty("resourceType").GetString() == "Practitioner");
    }
}
