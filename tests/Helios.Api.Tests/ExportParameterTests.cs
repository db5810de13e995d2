using System.Net;
using System.Text.Json;
using Helios.Storage;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;
using Task = System.Threading.Tasks.Task;

namespace Helios.Api.Tests;

/// <summary>The kick-off parameters that select or shape what is exported, on every level and both topologies.</summary>
public abstract partial class ExportContract<TFactory>
{
    private static Observation Lab(string id, string patient, string category, string code, decimal value) => new()
    {
        Id = id,
        Status = ObservationStatus.Final,
        Category = [new CodeableConcept("http://terminology.hl7.org/CodeSystem/observation-category", category)],
        Code = new CodeableConcept("http://loinc.org", code),
        Subject = new ResourceReference("Patient/" + patient),
        Value = new Quantity(value, "mg/dL", "http://unitsofmeasure.org"),
    };

    private static bool HasCoding(JsonElement concepts, string system, string code) =>
        (concepts.ValueKind == JsonValueKind.Array ? concepts.EnumerateArray() : new[] { concepts }.AsEnumerable())
            .Any(c => c.TryGetProperty("coding", out var codings) && codings.EnumerateArray().Any(x =>
                x.TryGetProperty("system", out var s) && s.GetString() == system && x.TryGetProperty("code", out var k) && k.GetString() == code));

    /// <summary>The test's own reading of the two Observation filters: laboratory 4548-4, or a value above 100.</summary>
    private static bool MatchesObservationFilters(JsonElement observation) =>
        (observation.TryGetProperty("category", out var category) && HasCoding(category, "http://terminology.hl7.org/CodeSystem/observation-category", "laboratory") &&
         HasCoding(observation.GetProperty("code"), "http://loinc.org", "4548-4")) ||
        (observation.TryGetProperty("valueQuantity", out var quantity) && quantity.TryGetProperty("value", out var value) && value.GetDecimal() > 100);

    [Fact]
    public async Task TypeFilter_KeepsOnlyMatchingResources_OredPerType_OnEveryLevel()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        var store = factory.Services.GetRequiredService<IResourceStore>();
        string female = $"tf-f-{tag}", male = $"tf-m-{tag}";
        var observations = new[]
        {
            Lab($"tf-a-{tag}", female, "laboratory", "4548-4", 5m),     // first filter
            Lab($"tf-b-{tag}", male, "laboratory", "2345-7", 150m),     // second filter
            Lab($"tf-c-{tag}", female, "vital-signs", "4548-4", 50m),   // neither: wrong category
            Lab($"tf-d-{tag}", male, "laboratory", "2345-7", 100m),     // neither: not above 100
        };
        await store.WriteAsync(
        [
            ResourceWrite.Update(new Patient { Id = female, Gender = AdministrativeGender.Female }),
            ResourceWrite.Update(new Patient { Id = male, Gender = AdministrativeGender.Male }),
            .. observations.Select(o => ResourceWrite.Update(o)),
            ResourceWrite.Update(new Group { Id = $"tf-g-{tag}", Type = Group.GroupType.Person, Actual = true, Member = [new() { Entity = new ResourceReference("Patient/" + female) }, new() { Entity = new ResourceReference("Patient/" + male) }] }),
        ], CancellationToken.None);
        // A later version that no longer matches must not be exported through its earlier, matching version's index rows.
        var changed = Lab($"tf-e-{tag}", female, "laboratory", "4548-4", 7m);
        await store.WriteAsync([ResourceWrite.Update(changed)], CancellationToken.None);
        changed.Category = [new CodeableConcept("http://terminology.hl7.org/CodeSystem/observation-category", "survey")];
        await store.WriteAsync([ResourceWrite.Update(changed)], CancellationToken.None);

        var lab = Uri.EscapeDataString("Observation?category=laboratory&code=http://loinc.org|4548-4");
        var high = Uri.EscapeDataString("Observation?value-quantity=gt100");
        var women = Uri.EscapeDataString("Patient?gender=female");
        foreach (var path in new[] { "/$export", "/Patient/$export", $"/Group/tf-g-{tag}/$export" })
        {
            // Repeated parameters (STU3) and one comma-joined value (STU2) mean the same.
            foreach (var query in new[] { $"_typeFilter={lab}&_typeFilter={high}&_typeFilter={women}", $"_typeFilter={lab},{high},{women}" })
            {
                var manifest = await _client.WaitForManifestAsync(await _client.KickoffAsync($"{path}?_type=Patient,Observation,Condition&{query}"));
                var lines = await _client.DownloadOutputAsync(manifest);
                Assert.All(lines["Observation"], o => Assert.True(MatchesObservationFilters(o), $"{path}: exported {o.GetRawText()}"));
                Assert.All(lines["Patient"], p => Assert.Equal("female", p.GetProperty("gender").GetString()));
                var ids = ExportClient.IdsByType(lines);
                Assert.Equal([$"tf-a-{tag}", $"tf-b-{tag}"], ids["Observation"].Where(id => id.EndsWith(tag, StringComparison.Ordinal)).Order(StringComparer.Ordinal));
                Assert.Equal([female], ids["Patient"].Where(id => id.EndsWith(tag, StringComparison.Ordinal)));
                // A type without a filter is exported whole.
                var conditions = await Store.CountByTypeAsync(CancellationToken.None);
                if (path == "/$export")
                {
                    Assert.Equal(conditions["Condition"], ids["Condition"].Count);
                }
            }
        }

        // POST gives the same export as GET.
        var post = await _client.SendKickoffAsync("/$export", HttpMethod.Post, $$"""
            {"resourceType":"Parameters","parameter":[
              {"name":"_type","valueString":"Observation"},
              {"name":"_typeFilter","valueString":"Observation?category=laboratory&code=http://loinc.org|4548-4"},
              {"name":"_typeFilter","valueString":"Observation?value-quantity=gt100"}]}
            """);
        Assert.Equal(HttpStatusCode.Accepted, post.StatusCode);
        var posted = ExportClient.IdsByType(await _client.DownloadOutputAsync(await _client.WaitForManifestAsync(post.Content.Headers.ContentLocation!.AbsoluteUri)));
        var got = ExportClient.IdsByType(await _client.DownloadOutputAsync(await _client.WaitForManifestAsync(await _client.KickoffAsync($"/$export?_type=Observation&_typeFilter={lab}&_typeFilter={high}"))));
        Assert.Equal(got["Observation"].Order(StringComparer.Ordinal), posted["Observation"].Order(StringComparer.Ordinal));

        // Commas inside one query's value are that parameter's OR, not a new query.
        var either = Uri.EscapeDataString("Observation?code=http://loinc.org|4548-4,http://loinc.org|2345-7&subject=Patient/" + male);
        var byCode = ExportClient.IdsByType(await _client.DownloadOutputAsync(await _client.WaitForManifestAsync(await _client.KickoffAsync($"/$export?_type=Observation&_typeFilter={either}"))));
        Assert.Equal([$"tf-b-{tag}", $"tf-d-{tag}"], byCode["Observation"].Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("/$export", "Observation?_sort=date", "_sort")]
    [InlineData("/$export", "Observation?_include=Observation:subject", "_include")]
    [InlineData("/$export", "Observation?_count=10", "_count")]
    [InlineData("/$export", "Observation?_elements=id", "_elements")]
    [InlineData("/$export", "Observation?no-such-parameter=1", "no-such-parameter")]
    [InlineData("/$export", "NotAType?code=1", "NotAType")]
    [InlineData("/$export", "Observation?date=yesterday", "yesterday")]
    [InlineData("/Patient/$export", "Organization?name=x", "Patient compartment")]
    [InlineData("/Patient/$export", "Observation?code:nonsense=1", "nonsense")]
    public async Task TypeFilter_RefusesWhatItCannotApply(string path, string filter, string named)
    {
        var response = await _client.SendKickoffAsync($"{path}?_typeFilter={Uri.EscapeDataString(filter)}");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var text = await response.OutcomeTextAsync();
        Assert.Contains("_typeFilter", text, StringComparison.Ordinal);
        Assert.Contains(named, text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TypeFilter_Lenient_DropsTheUnsupportedPart_AndSaysSo()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        await Store.WriteAsync([ResourceWrite.Update(new Patient { Id = $"tl-{tag}", Gender = AdministrativeGender.Other })], CancellationToken.None);
        var filter = Uri.EscapeDataString("Patient?gender=other&no-such-parameter=1");
        var manifest = await _client.WaitForManifestAsync(await _client.KickoffAsync($"/$export?_type=Patient&_typeFilter={filter}", ("Prefer", "respond-async, handling=lenient")));
        var lines = await _client.DownloadOutputAsync(manifest);
        Assert.Contains(lines["Patient"], p => p.GetProperty("id").GetString() == $"tl-{tag}");
        Assert.All(lines["Patient"], p => Assert.Equal("other", p.GetProperty("gender").GetString()));
        Assert.Contains(await _client.DownloadErrorsAsync(manifest), e => e.Contains("no-such-parameter", StringComparison.Ordinal));
    }
}
