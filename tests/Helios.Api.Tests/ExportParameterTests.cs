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

    private static void AssertSubsetted(JsonElement resource, params string[] allowed)
    {
        var names = resource.EnumerateObject().Select(p => p.Name.TrimStart('_')).ToList();
        Assert.All(names, n => Assert.True(n is "resourceType" or "id" or "meta" || allowed.Contains(n), $"{n} was not asked for: {resource.GetRawText()}"));
        Assert.Contains(resource.GetProperty("meta").GetProperty("tag").EnumerateArray(), t =>
            t.GetProperty("system").GetString() == "http://terminology.hl7.org/CodeSystem/v3-ObservationValue" && t.GetProperty("code").GetString() == "SUBSETTED");
    }

    [Fact]
    public async Task Elements_KeepsTheListedAndMandatoryElements_TagsSubsetted_OnEveryLevel()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        var patient = new Patient
        {
            Id = $"el-p-{tag}", BirthDateElement = new Date("1970-05-06") { Extension = [new Extension("http://example.org/precision", new FhirString("day"))] },
            Gender = AdministrativeGender.Female, Name = [new HumanName { Family = "Hidden" }],
            Meta = new Meta { Tag = [new Coding("http://example.org/tags", "kept")] },
        };
        await Store.WriteAsync(
        [
            ResourceWrite.Update(patient),
            ResourceWrite.Update(Lab($"el-o-{tag}", patient.Id, "laboratory", "4548-4", 6.1m)),
            ResourceWrite.Update(new Group { Id = $"el-g-{tag}", Type = Group.GroupType.Person, Actual = true, Member = [new() { Entity = new ResourceReference("Patient/" + patient.Id) }] }),
        ], CancellationToken.None);

        foreach (var path in new[] { "/$export", "/Patient/$export", $"/Group/el-g-{tag}/$export" })
        {
            // Patient.birthDate for Patients; the bare 'value' (a choice) for every type that has it; Observation's
            // mandatory status and code always stay.
            var manifest = await _client.WaitForManifestAsync(await _client.KickoffAsync($"{path}?_type=Patient,Observation,Condition&_elements=Patient.birthDate,value"));
            var lines = await _client.DownloadOutputAsync(manifest);
            Assert.All(lines["Patient"], p => AssertSubsetted(p, "birthDate"));
            Assert.All(lines["Observation"], o => AssertSubsetted(o, "value", "valueQuantity", "valueCodeableConcept", "valueString", "status", "code"));
            // Condition has no 'value' and no Condition.x was asked for: exported whole, untagged.
            Assert.All(lines.GetValueOrDefault("Condition") ?? [], c => Assert.True(c.TryGetProperty("subject", out _) && !c.GetRawText().Contains("SUBSETTED", StringComparison.Ordinal), c.GetRawText()));
            Assert.True(path.StartsWith("/Group", StringComparison.Ordinal) || lines["Condition"].Count > 0);
            var mine = lines["Patient"].Single(p => p.GetProperty("id").GetString() == patient.Id);
            Assert.Equal("1970-05-06", mine.GetProperty("birthDate").GetString());
            Assert.Equal("day", mine.GetProperty("_birthDate").GetProperty("extension")[0].GetProperty("valueString").GetString());
            Assert.Contains(mine.GetProperty("meta").GetProperty("tag").EnumerateArray(), t => t.GetProperty("code").GetString() == "kept");
            Assert.Equal("1", mine.GetProperty("meta").GetProperty("versionId").GetString());
            var lab = lines["Observation"].Single(o => o.GetProperty("id").GetString() == $"el-o-{tag}");
            Assert.Equal(6.1m, lab.GetProperty("valueQuantity").GetProperty("value").GetDecimal());
            Assert.Equal("4548-4", lab.GetProperty("code").GetProperty("coding")[0].GetProperty("code").GetString());
        }

        // The IG's member listing: a Group's Patients with ids only.
        var members = await _client.DownloadOutputAsync(await _client.WaitForManifestAsync(await _client.KickoffAsync($"/Group/el-g-{tag}/$export?_type=Patient&_elements=id")));
        AssertSubsetted(Assert.Single(members["Patient"]));
    }

    [Theory]
    [InlineData("Patient.name.given", "root element")]
    [InlineData("Patient.nope", "no element 'nope'")]
    [InlineData("nope", "not an element")]
    [InlineData("NotAType.id", "root element")]
    public async Task Elements_RefusesWhatIsNotARootElement(string elements, string explanation)
    {
        var response = await _client.SendKickoffAsync($"/$export?_elements={elements}");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(explanation, await response.OutcomeTextAsync(), StringComparison.Ordinal);
        var lenient = await _client.SendKickoffAsync($"/$export?_type=Organization&_elements={elements}", null, null, ("Prefer", "respond-async, handling=lenient"));
        Assert.Equal(HttpStatusCode.Accepted, lenient.StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, (await _client.Api.DeleteAsync(lenient.Content.Headers.ContentLocation!.AbsoluteUri)).StatusCode);
    }

    private async Task<Dictionary<string, List<JsonElement>>> ExportAsync(string url)
    {
        var lines = await _client.DownloadOutputAsync(await _client.WaitForManifestAsync(await _client.KickoffAsync(url)));
        foreach (var (type, resources) in lines)
        {
            // Each resource once, whichever way it was reached.
            Assert.True(resources.Count == resources.Select(r => r.GetProperty("id").GetString()).Distinct().Count(), $"{url}: a {type} was exported twice");
        }

        return lines;
    }

    private static List<string> Mine(Dictionary<string, List<JsonElement>> lines, string type, string tag) =>
        [.. (lines.GetValueOrDefault(type) ?? []).Select(r => r.GetProperty("id").GetString()!).Where(id => id.EndsWith(tag, StringComparison.Ordinal)).Order(StringComparer.Ordinal)];

    [Fact]
    public async Task IncludeAssociatedData_AddsProvenanceAndReferencedResources_EachOnce()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        string Id(string name) => $"{name}-{tag}";
        Provenance ProvenanceOf(string id, params string[] targets) => new()
        {
            Id = Id(id), Recorded = DateTimeOffset.UtcNow, Target = [.. targets.Select(t => new ResourceReference(t))],
            Agent = [new Provenance.AgentComponent { Who = new ResourceReference("Practitioner/" + Id("pr")) }],
        };
        Encounter EncounterOf(string id, string patient, string practitioner) => new()
        {
            Id = Id(id), Status = Encounter.EncounterStatus.Finished, Class = new Coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB"),
            Subject = new ResourceReference("Patient/" + Id(patient)),
            Participant = [new Encounter.ParticipantComponent { Individual = new ResourceReference("Practitioner/" + Id(practitioner)) }],
            ServiceProvider = new ResourceReference("Organization/" + Id("org")),
            Location = [new Encounter.LocationComponent { Location = new ResourceReference("Location/" + Id("loc")) }],
        };
        await Store.WriteAsync(
        [
            ResourceWrite.Update(new Practitioner { Id = Id("pr") }), ResourceWrite.Update(new Practitioner { Id = Id("pr2") }),
            ResourceWrite.Update(new Organization { Id = Id("org") }), ResourceWrite.Update(new Location { Id = Id("loc") }),
            ResourceWrite.Update(new Medication { Id = Id("med") }),
            ResourceWrite.Update(new Patient { Id = Id("p") }), ResourceWrite.Update(new Patient { Id = Id("q") }),
            ResourceWrite.Update(EncounterOf("e", "p", "pr")), ResourceWrite.Update(EncounterOf("qe", "q", "pr2")),
            ResourceWrite.Update(new MedicationRequest
            {
                Id = Id("mr"), Status = MedicationRequest.MedicationrequestStatus.Active, Intent = MedicationRequest.MedicationRequestIntent.Order,
                Subject = new ResourceReference("Patient/" + Id("p")), Medication = new ResourceReference("Medication/" + Id("med")),
                Requester = new ResourceReference("Practitioner/" + Id("pr")),
            }),
            ResourceWrite.Update(new Group { Id = Id("g"), Type = Group.GroupType.Person, Actual = true, Member = [new() { Entity = new ResourceReference("Patient/" + Id("p")) }] }),
        ], CancellationToken.None);
        // Written one after another: prov2 is the latest for the Encounter.
        foreach (var provenance in new[] { ProvenanceOf("prov0", "Patient/" + Id("p")), ProvenanceOf("prov1", "Encounter/" + Id("e")), ProvenanceOf("prov2", "Encounter/" + Id("e"), "MedicationRequest/" + Id("mr")), ProvenanceOf("prov3", "Encounter/" + Id("qe")) })
        {
            await Store.WriteAsync([ResourceWrite.Update(provenance)], CancellationToken.None);
        }

        var group = $"/Group/{Id("g")}/$export?_type=Patient,Encounter,MedicationRequest,Provenance";
        var referenced = await ExportAsync(group + "&includeAssociatedData=_referenced");
        Assert.Equal([Id("pr")], Mine(referenced, "Practitioner", tag));
        Assert.Equal([Id("org")], Mine(referenced, "Organization", tag));
        Assert.Equal([Id("loc")], Mine(referenced, "Location", tag));
        Assert.Equal([Id("med")], Mine(referenced, "Medication", tag));
        Assert.Equal([Id("prov0")], Mine(referenced, "Provenance", tag)); // the compartment's own, as without the parameter

        var relevant = await ExportAsync(group + "&includeAssociatedData=RelevantProvenanceResources");
        Assert.Equal([Id("prov0"), Id("prov1"), Id("prov2")], Mine(relevant, "Provenance", tag));
        Assert.DoesNotContain("Practitioner", relevant.Keys);

        var latest = await ExportAsync(group + "&includeAssociatedData=LatestProvenanceResources");
        Assert.Equal([Id("prov0"), Id("prov2")], Mine(latest, "Provenance", tag));
        // Both given: the least restrictive (Relevant) applies.
        Assert.Equal([Id("prov0"), Id("prov1"), Id("prov2")], Mine(await ExportAsync(group + "&includeAssociatedData=LatestProvenanceResources,RelevantProvenanceResources"), "Provenance", tag));
        Assert.Equal([Id("prov2")], Mine(await ExportAsync($"/Group/{Id("g")}/$export?_type=Encounter&includeAssociatedData=LatestProvenanceResources"), "Provenance", tag));

        // Patient level reaches q too; system level from Encounters only.
        var patients = await ExportAsync("/Patient/$export?_type=Encounter&includeAssociatedData=_referenced,RelevantProvenanceResources");
        Assert.Equal([Id("pr"), Id("pr2")], Mine(patients, "Practitioner", tag));
        Assert.Equal([Id("prov1"), Id("prov2"), Id("prov3")], Mine(patients, "Provenance", tag));
        var system = await ExportAsync("/$export?_type=Encounter,MedicationRequest&includeAssociatedData=_referenced,RelevantProvenanceResources");
        Assert.Equal([Id("med")], Mine(system, "Medication", tag));
        Assert.Equal([Id("p"), Id("q")], Mine(system, "Patient", tag));
        Assert.Equal([Id("prov1"), Id("prov2"), Id("prov3")], Mine(system, "Provenance", tag));

        // POST with the STU4 Coding form.
        var post = await _client.SendKickoffAsync($"/Group/{Id("g")}/$export", HttpMethod.Post, """
            {"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Encounter"},
              {"name":"includeAssociatedData","valueCoding":{"system":"http://hl7.org/fhir/uv/bulkdata/CodeSystem/include-associated-data","code":"LatestProvenanceResources"}}]}
            """);
        Assert.Equal(HttpStatusCode.Accepted, post.StatusCode);
        var posted = await _client.DownloadOutputAsync(await _client.WaitForManifestAsync(post.Content.Headers.ContentLocation!.AbsoluteUri));
        Assert.Equal([Id("prov2")], Mine(posted, "Provenance", tag));
    }

    [Fact]
    public async Task IncludeAssociatedData_RefusesUnknownValues_UnlessLenient()
    {
        var refused = await _client.SendKickoffAsync("/$export?includeAssociatedData=_everything");
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("_everything", await refused.OutcomeTextAsync(), StringComparison.Ordinal);
        var manifest = await _client.WaitForManifestAsync(await _client.KickoffAsync("/$export?_type=Organization&includeAssociatedData=_everything", ("Prefer", "respond-async, handling=lenient")));
        Assert.Contains(await _client.DownloadErrorsAsync(manifest), e => e.Contains("_everything", StringComparison.Ordinal));
    }

    [Fact]
    public async Task GroupSince_NewMembers_GetChangesOnly_OrAllTheirData_AsConfigured()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        string Id(string name) => $"gs-{name}-{tag}";
        async Task<DateTimeOffset> WriteAsync(Resource resource) =>
            (await Store.WriteAsync([ResourceWrite.Update(resource)], CancellationToken.None))[0].Resource!.LastUpdated;
        Observation ObservationOf(string id, string patient) => new()
        {
            Id = Id(id), Status = ObservationStatus.Final, Code = new CodeableConcept("http://loinc.org", "8867-4"), Subject = new ResourceReference("Patient/" + Id(patient)),
        };

        foreach (var patient in new[] { "a", "b", "c" })
        {
            await WriteAsync(new Patient { Id = Id(patient) });
            await WriteAsync(ObservationOf(patient + "-old", patient));
        }

        var group = new Group { Id = Id("g"), Type = Group.GroupType.Person, Actual = true, Member = [new() { Entity = new ResourceReference("Patient/" + Id("a")) }] };
        var since = await WriteAsync(group);
        await Task.Delay(5);
        // After _since: b is added in a new version of the Group, c with a period that starts after _since, and a changes.
        group.Member.Add(new Group.MemberComponent { Entity = new ResourceReference("Patient/" + Id("b")) });
        group.Member.Add(new Group.MemberComponent
        {
            Entity = new ResourceReference("Patient/" + Id("c")),
            Period = new Period { StartElement = new FhirDateTime(since.AddMilliseconds(1).ToUniversalTime()) },
        });
        await WriteAsync(group);
        await WriteAsync(ObservationOf("a-new", "a"));
        await Task.Delay(5);

        var url = $"/Group/{Id("g")}/$export?_type=Patient,Observation&_since={Uri.EscapeDataString(since.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", System.Globalization.CultureInfo.InvariantCulture))}";
        var changesOnly = await ExportAsync(url);
        Assert.Equal([Id("a-new")], Mine(changesOnly, "Observation", tag));
        Assert.Empty(Mine(changesOnly, "Patient", tag));

        var options = factory.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Helios.Export.ExportOptions>>().Value;
        options.GroupSinceNewMembers = Helios.Export.NewGroupMemberData.AllData;
        try
        {
            var allData = await ExportAsync(url);
            Assert.Equal([Id("a-new"), Id("b-old"), Id("c-old")], Mine(allData, "Observation", tag));
            Assert.Equal([Id("b"), Id("c")], Mine(allData, "Patient", tag));
        }
        finally
        {
            options.GroupSinceNewMembers = Helios.Export.NewGroupMemberData.ChangesOnly;
        }
    }

    [Fact]
    public async Task OrganizeOutputByPatient_WritesOneUnsplitBlockPerPatient_WithItsCompartment()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        var expected = await Store.CountByTypeAsync(CancellationToken.None);
        await Store.WriteAsync(
        [
            ResourceWrite.Update(new Patient { Id = $"ob-p-{tag}" }),
            ResourceWrite.Update(Lab($"ob-o-{tag}", $"ob-p-{tag}", "laboratory", "4548-4", 6m)),
            ResourceWrite.Update(new Group { Id = $"ob-g-{tag}", Type = Group.GroupType.Person, Actual = true, Member = [new() { Entity = new ResourceReference($"Patient/ob-p-{tag}") }] }),
        ], CancellationToken.None);

        foreach (var (path, wholeStore) in new[] { ("/$export", true), ("/Patient/$export", true), ($"/Group/ob-g-{tag}/$export", false) })
        {
            var manifest = await _client.WaitForManifestAsync(await _client.KickoffAsync($"{path}?organizeOutputBy=Patient"));
            Assert.Equal("Patient", manifest.GetProperty("outputOrganizedBy").GetString());
            var headers = new HashSet<string>();
            var counts = new Dictionary<string, int>();
            foreach (var file in manifest.GetProperty("output").EnumerateArray())
            {
                Assert.False(file.TryGetProperty("type", out _), "organized output files carry no type");
                var text = await (await _client.GetFileAsync(file.GetProperty("url").GetString()!)).Content.ReadAsStringAsync();
                var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
                Assert.Equal(file.GetProperty("count").GetInt64(), lines.Length);
                string? current = null;
                foreach (var line in lines)
                {
                    var resource = JsonDocument.Parse(line).RootElement;
                    var type = resource.GetProperty("resourceType").GetString()!;
                    if (type == "Parameters")
                    {
                        var header = resource.GetProperty("parameter")[0];
                        Assert.Equal("header", header.GetProperty("name").GetString());
                        current = header.GetProperty("valueReference").GetProperty("reference").GetString()!["Patient/".Length..];
                        Assert.True(headers.Add(current), $"{path}: the block of Patient/{current} was split or repeated");
                        continue;
                    }

                    Assert.NotNull(current); // every file starts with a header
                    counts[type] = counts.GetValueOrDefault(type) + 1;
                    Assert.True(type == "Patient" ? resource.GetProperty("id").GetString() == current : line.Contains($"Patient/{current}\"", StringComparison.Ordinal),
                        $"{path}: {type}/{resource.GetProperty("id").GetString()} is not in the compartment of Patient/{current}");
                }
            }

            Assert.Contains($"ob-p-{tag}", headers);
            if (wholeStore)
            {
                Assert.Equal(expected["Patient"] + 1, counts["Patient"]);
                Assert.Equal(expected["Observation"] + 1, counts["Observation"]);
                Assert.Equal(expected["Condition"], counts["Condition"]);
                Assert.DoesNotContain("Organization", counts.Keys);
            }
            else
            {
                Assert.Equal([$"ob-p-{tag}"], headers);
                Assert.Equal(1, counts["Observation"]);
            }

            if (path == "/$export")
            {
                Assert.Contains(await _client.DownloadErrorsAsync(manifest), e => e.Contains("Organization", StringComparison.Ordinal) && e.Contains("organizeOutputBy", StringComparison.Ordinal));
            }
        }

        // With _since: an unchanged Patient's block still carries its changed data (partitions are cut by Patient key).
        var since = (await Store.WriteAsync([ResourceWrite.Update(Lab($"ob-o2-{tag}", $"ob-p-{tag}", "laboratory", "4548-4", 7m))], CancellationToken.None))[0].Resource!.LastUpdated.AddTicks(-10);
        var window = await _client.WaitForManifestAsync(await _client.KickoffAsync(
            $"/Patient/$export?organizeOutputBy=Patient&_since={Uri.EscapeDataString(since.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", System.Globalization.CultureInfo.InvariantCulture))}"));
        var windowLines = new List<string>();
        foreach (var file in window.GetProperty("output").EnumerateArray())
        {
            windowLines.AddRange((await (await _client.GetFileAsync(file.GetProperty("url").GetString()!)).Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }

        Assert.Equal(2, windowLines.Count);
        Assert.Contains($"Patient/ob-p-{tag}", windowLines[0], StringComparison.Ordinal);
        Assert.Contains($"ob-o2-{tag}", windowLines[1], StringComparison.Ordinal);

        var refused = await _client.SendKickoffAsync("/$export?organizeOutputBy=Encounter");
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("Patient only", await refused.OutcomeTextAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task StoredResourceThatIsNotJson_IsLeftOut_AndNamedInTheErrorFile_TheRestIsExported()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        await Store.WriteAsync([ResourceWrite.Update(new Patient { Id = $"nj-a-{tag}" }), ResourceWrite.Update(new Patient { Id = $"nj-b-{tag}" })], CancellationToken.None);
        await Store.CorruptCurrentVersionAsync("Patient", $"nj-b-{tag}", $"{{\"resourceType\":\"Patient\",\"id\":\"nj-b-{tag}\",\"name\":[{{\"fam", CancellationToken.None);
        try
        {
            var manifest = await _client.WaitForManifestAsync(await _client.KickoffAsync("/$export?_type=Patient"));
            var patients = (await _client.DownloadOutputAsync(manifest))["Patient"];
            Assert.Contains(patients, p => p.GetProperty("id").GetString() == $"nj-a-{tag}");
            Assert.DoesNotContain(patients, p => p.GetProperty("id").GetString() == $"nj-b-{tag}");
            Assert.Contains(await _client.DownloadErrorsAsync(manifest), e => e.Contains($"Patient/nj-b-{tag}", StringComparison.Ordinal) && e.Contains("not valid JSON", StringComparison.Ordinal));
            var counted = manifest.GetProperty("output").EnumerateArray().Where(o => o.GetProperty("type").GetString() == "Patient").Sum(o => o.GetProperty("count").GetInt64());
            Assert.Equal(patients.Count, counted);
        }
        finally
        {
            // Leave the shared store whole for the other tests.
            await Store.WriteAsync([ResourceWrite.Delete("Patient", $"nj-b-{tag}")], CancellationToken.None);
        }
    }
}
