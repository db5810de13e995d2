using System.Globalization;
using System.Net;
using System.Text.Json;
using static Helios.Api.Tests.FhirJsonHttp;

namespace Helios.Api.Tests;

/// <summary>Loads the 100 Synthea transaction bundles (plus providers and the group) through POST [base].</summary>
public class SyntheaLoadFixture : IAsyncLifetime
{
    public HeliosApiFactory Factory { get; } = new LargeBodyHeliosApiFactory();

    public HttpClient Client { get; private set; } = null!;

    public List<JsonElement> Resources { get; private set; } = [];

    public async Task InitializeAsync()
    {
        await ((IAsyncLifetime)Factory).InitializeAsync();
        Client = Factory.CreateClient();
        if (SyntheaData.BundleDirectory is null)
        {
            return;
        }

        Resources = SyntheaData.AllResources();
        foreach (var file in SyntheaData.BundleFiles())
        {
            var response = await Client.SendAsync(Request(HttpMethod.Post, "/", SyntheaData.ReadText(file)));
            if (response.StatusCode != HttpStatusCode.OK)
            {
                throw new InvalidOperationException($"{Path.GetFileName(file)}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            }
        }
    }

    public async Task DisposeAsync() => await ((IAsyncLifetime)Factory).DisposeAsync();
}

public sealed class SyntheaBundleTests(SyntheaLoadFixture fixture) : IClassFixture<SyntheaLoadFixture>
{
    private HttpClient Client => fixture.Client;

    private IEnumerable<JsonElement> OfType(string type) => fixture.Resources.Where(r => r.GetProperty("resourceType").GetString() == type);

    private async Task<long> Total(string query)
    {
        var response = await Client.GetAsync(query + (query.Contains('?') ? "&" : "?") + "_summary=count");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.JsonAsync()).GetProperty("total").GetInt64();
    }

    private static string? Str(JsonElement e, params string[] path)
    {
        foreach (var p in path)
        {
            if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty(p, out e))
            {
                return null;
            }
        }

        return e.ValueKind == JsonValueKind.String ? e.GetString() : e.ToString();
    }

    private static IEnumerable<JsonElement> Codings(JsonElement resource, string property) =>
        resource.TryGetProperty(property, out var cc) && cc.TryGetProperty("coding", out var codings) ? codings.EnumerateArray() : [];

    private static DateTimeOffset Instant(string text) => DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);

    [SyntheaFact]
    public async Task PerTypeCounts_MatchTheBundles()
    {
        foreach (var group in fixture.Resources.GroupBy(r => r.GetProperty("resourceType").GetString()!))
        {
            Assert.True(group.Count() == await Total($"/{group.Key}"), $"{group.Key}: expected {group.Count()}");
        }
    }

    [SyntheaFact]
    public async Task Searches_MatchValuesComputedFromTheFiles()
    {
        // 1. token on a bound code
        Assert.Equal(OfType("Patient").Count(p => Str(p, "gender") == "female"), await Total("/Patient?gender=female"));

        // 2. date prefix on a date
        Assert.Equal(OfType("Patient").Count(p => string.CompareOrdinal(Str(p, "birthDate"), "1950-01-01") < 0), await Total("/Patient?birthdate=lt1950-01-01"));

        // 3. token system|code on CodeableConcept
        var height = OfType("Observation").Count(o => Codings(o, "code").Any(c => Str(c, "system") == "http://loinc.org" && Str(c, "code") == "8302-2"));
        Assert.True(height > 0);
        Assert.Equal(height, await Total("/Observation?code=http://loinc.org|8302-2"));

        // 4. the most common condition code
        var topCondition = OfType("Condition").SelectMany(c => Codings(c, "code")).GroupBy(c => Str(c, "code")).OrderByDescending(g => g.Count()).First();
        Assert.Equal(OfType("Condition").Count(c => Codings(c, "code").Any(x => Str(x, "code") == topCondition.Key)), await Total("/Condition?code=" + topCondition.Key));

        // 5. token on a Coding (Encounter.class)
        Assert.Equal(OfType("Encounter").Count(e => Str(e, "class", "code") == "AMB"), await Total("/Encounter?class=AMB"));

        // 6. quantity with a prefix, AND-ed with a code
        var highGlucose = OfType("Observation").Count(o => Codings(o, "code").Any(c => Str(c, "code") == "2339-0")
            && o.TryGetProperty("valueQuantity", out var q) && q.GetProperty("value").GetDecimal() > 100m);
        Assert.Equal(highGlucose, await Total("/Observation?code=2339-0&value-quantity=gt100"));

        // 7. date on dateTime with a zone, ge
        var cutoff = new DateTimeOffset(2019, 1, 1, 0, 0, 0, TimeSpan.Zero);
        Assert.Equal(OfType("Immunization").Count(i => Instant(Str(i, "occurrenceDateTime")!) >= cutoff), await Total("/Immunization?date=ge2019-01-01T00:00:00Z"));

        // 8. status token
        Assert.Equal(OfType("MedicationRequest").Count(m => Str(m, "status") == "active"), await Total("/MedicationRequest?status=active"));

        // 9. date on a Period (Encounter.period overlaps before the cutoff)
        var old = new DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);
        Assert.Equal(OfType("Encounter").Count(e => Instant(Str(e, "period", "start")!) < old), await Total("/Encounter?date=lt2000-01-01T00:00:00Z"));

        // 10. string prefix on family, case-insensitive
        var family = Str(OfType("Patient").First().GetProperty("name")[0], "family")!;
        Assert.Equal(
            OfType("Patient").Count(p => p.GetProperty("name").EnumerateArray().Any(n => (Str(n, "family") ?? "").StartsWith(family, StringComparison.OrdinalIgnoreCase))),
            await Total("/Patient?family=" + Uri.EscapeDataString(family.ToUpperInvariant())));
    }

    [SyntheaFact]
    public async Task ReferencesWereRewritten_AndCompartmentsMatchTheFiles()
    {
        // The server assigned new ids on POST; find each patient through its Synthea identifier.
        foreach (var patient in OfType("Patient").Take(5))
        {
            var fileId = Str(patient, "id")!;
            var identifier = patient.GetProperty("identifier").EnumerateArray().First(i => Str(i, "system") == "https://github.com/synthetichealth/synthea");
            var search = await (await Client.GetAsync($"/Patient?identifier={Uri.EscapeDataString(Str(identifier, "system")! + "|" + Str(identifier, "value"))}")).JsonAsync();
            var serverId = search.GetProperty("entry")[0].GetProperty("resource").GetProperty("id").GetString()!;

            var expectedObservations = OfType("Observation").Count(o => Str(o, "subject", "reference") == "urn:uuid:" + fileId);
            Assert.Equal(expectedObservations, await Total($"/Observation?patient={serverId}"));
            Assert.Equal(expectedObservations, await Total($"/Patient/{serverId}/Observation"));

            var expectedClaims = OfType("Claim").Count(c => Str(c, "patient", "reference") == "urn:uuid:" + fileId);
            Assert.Equal(expectedClaims, await Total($"/Patient/{serverId}/Claim"));
        }
    }
}
