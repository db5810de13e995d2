using System.Net;
using static Helios.Api.Tests.FhirJsonHttp;

namespace Helios.Api.Tests;

/// <summary>REST behaviour, written once and run on both topologies' stores.</summary>
public abstract class FhirRestContract<TFactory>(TFactory factory) : IClassFixture<TFactory>
    where TFactory : HeliosApiFactory
{
    private readonly HttpClient _client = factory.CreateClient();

    private static string PatientJson(string family, string? id = null) =>
        $$$"""{"resourceType":"Patient"{{{(id is null ? "" : $",\"id\":\"{id}\"")}}},"name":[{"family":"{{{family}}}","given":["Ann"]}],"gender":"female","birthDate":"1970-01-01"}""";

    [Fact]
    public async Task Metadata_IsACapabilityStatement()
    {
        var response = await _client.GetAsync("/metadata");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = await response.JsonAsync();
        Assert.Equal("CapabilityStatement", json.GetProperty("resourceType").GetString());
        Assert.Equal("4.0.1", json.GetProperty("fhirVersion").GetString());
        var patient = json.GetProperty("rest")[0].GetProperty("resource").EnumerateArray().Single(r => r.GetProperty("type").GetString() == "Patient");
        Assert.Contains(patient.GetProperty("searchParam").EnumerateArray(), p => p.GetProperty("name").GetString() == "family");
    }

    [Fact]
    public async Task Crud_Lifecycle_WithVersionsHistoryAndConflicts()
    {
        var created = await _client.SendAsync(Request(HttpMethod.Post, "/Patient", PatientJson("Lifecycle")));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal("W/\"1\"", created.Headers.ETag?.ToString());
        var location = created.Headers.Location!.ToString();
        Assert.Matches("/Patient/[0-9a-f-]{36}/_history/1$", location);
        var id = (await created.JsonAsync()).GetProperty("id").GetString()!;

        var read = await _client.GetAsync($"/Patient/{id}");
        Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        Assert.Equal("1", (await read.JsonAsync()).GetProperty("meta").GetProperty("versionId").GetString());

        var update = await _client.SendAsync(Request(HttpMethod.Put, $"/Patient/{id}", PatientJson("Lifecycle2", id), ("If-Match", "W/\"1\"")));
        Assert.Equal(HttpStatusCode.OK, update.StatusCode);
        Assert.Equal("W/\"2\"", update.Headers.ETag?.ToString());

        var stale = await _client.SendAsync(Request(HttpMethod.Put, $"/Patient/{id}", PatientJson("Stale", id), ("If-Match", "W/\"1\"")));
        Assert.Equal(HttpStatusCode.PreconditionFailed, stale.StatusCode);
        Assert.Contains("version 1", await stale.OutcomeTextAsync());

        var v1 = await (await _client.GetAsync($"/Patient/{id}/_history/1")).JsonAsync();
        Assert.Equal("Lifecycle", v1.GetProperty("name")[0].GetProperty("family").GetString());

        Assert.Equal(HttpStatusCode.NoContent, (await _client.DeleteAsync($"/Patient/{id}")).StatusCode);
        var gone = await _client.GetAsync($"/Patient/{id}");
        Assert.Equal(HttpStatusCode.Gone, gone.StatusCode);
        await gone.OutcomeTextAsync();

        var history = await (await _client.GetAsync($"/Patient/{id}/_history")).JsonAsync();
        Assert.Equal("history", history.GetProperty("type").GetString());
        var methods = history.GetProperty("entry").EnumerateArray().Select(e => e.GetProperty("request").GetProperty("method").GetString()).ToList();
        Assert.Equal(["DELETE", "PUT", "POST"], methods);

        // update-as-create with a client id
        var clientId = "client-" + Guid.NewGuid().ToString("N")[..8];
        var upsert = await _client.SendAsync(Request(HttpMethod.Put, $"/Patient/{clientId}", PatientJson("Upsert", clientId)));
        Assert.Equal(HttpStatusCode.Created, upsert.StatusCode);
    }

    [Theory]
    [InlineData("{not json", "Invalid JSON")]
    [InlineData("""{"resourceType":"Patient","colour":"blue"}""", "unknown element 'colour'")]
    [InlineData("""{"resourceType":"Observation","status":"final","code":{"text":"x"}}""", "URL names Patient")]
    [InlineData("""{"resourceType":"Patient","birthDate":"yesterday"}""", "birthDate")]
    public async Task BadBodies_Get400OperationOutcome_AndWriteNothing(string body, string expected)
    {
        var before = (await (await _client.GetAsync("/Patient?_summary=count")).JsonAsync()).GetProperty("total").GetInt64();
        var response = await _client.SendAsync(Request(HttpMethod.Post, "/Patient", body));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(expected, await response.OutcomeTextAsync(), StringComparison.OrdinalIgnoreCase);
        var after = (await (await _client.GetAsync("/Patient?_summary=count")).JsonAsync()).GetProperty("total").GetInt64();
        Assert.Equal(before, after);
    }

    [Fact]
    public async Task Errors_AreOperationOutcomes_WithTheRightStatus()
    {
        var unknownType = await _client.GetAsync("/Spaceship/1");
        Assert.Equal(HttpStatusCode.NotFound, unknownType.StatusCode);
        Assert.Contains("Spaceship", await unknownType.OutcomeTextAsync());

        var missing = await _client.GetAsync("/Patient/does-not-exist");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        await missing.OutcomeTextAsync();

        var strict = await _client.SendAsync(Request(HttpMethod.Get, "/Patient?shoe-size=42", null, ("Prefer", "handling=strict")));
        Assert.Equal(HttpStatusCode.BadRequest, strict.StatusCode);
        Assert.Contains("shoe-size", await strict.OutcomeTextAsync());

        var lenient = await (await _client.GetAsync("/Patient?shoe-size=42")).JsonAsync();
        Assert.Contains(lenient.GetProperty("entry").EnumerateArray(), e => e.GetProperty("search").GetProperty("mode").GetString() == "outcome");

        foreach (var cursor in new[] { "not-a-cursor", "eHl6H3Z3", "MTIzH2Fi" })
        {
            var badCursor = await _client.GetAsync($"/Patient?_sort=-birthdate&_cursor={cursor}");
            Assert.Equal(HttpStatusCode.BadRequest, badCursor.StatusCode);
            Assert.Contains("cursor", await badCursor.OutcomeTextAsync());
        }

        var badDate = await _client.GetAsync("/Patient?birthdate=ge19-1");
        Assert.Equal(HttpStatusCode.BadRequest, badDate.StatusCode);
        Assert.Contains("not a valid date", await badDate.OutcomeTextAsync());

        var huge = new string('x', (int)factory.MaxBodyBytes + 10);
        var tooBig = await _client.SendAsync(Request(HttpMethod.Post, "/Patient", $$$"""{"resourceType":"Patient","text":{"status":"generated","div":"{{{huge}}}"}}"""));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooBig.StatusCode);
        Assert.Contains("larger", await tooBig.OutcomeTextAsync());

        var noRoute = await _client.PatchAsync("/Patient/x", Body("{}"));
        Assert.True(noRoute.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.MethodNotAllowed);
    }

    [Fact]
    public async Task ConditionalCreate_ReturnsTheExistingMatch()
    {
        var family = "Cond" + Guid.NewGuid().ToString("N")[..8];
        var first = await _client.SendAsync(Request(HttpMethod.Post, "/Patient", PatientJson(family), ("If-None-Exist", $"family:exact={family}")));
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        var second = await _client.SendAsync(Request(HttpMethod.Post, "/Patient", PatientJson(family), ("If-None-Exist", $"family:exact={family}")));
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal((await first.JsonAsync()).GetProperty("id").GetString(), (await second.JsonAsync()).GetProperty("id").GetString());
    }

    [Fact]
    public async Task Search_PagesWithNextLinks_AndPostSearchMatchesGet()
    {
        var family = "Page" + Guid.NewGuid().ToString("N")[..8];
        var ids = new HashSet<string>();
        for (var i = 0; i < 12; i++)
        {
            ids.Add((await (await _client.SendAsync(Request(HttpMethod.Post, "/Patient", PatientJson(family)))).JsonAsync()).GetProperty("id").GetString()!);
        }

        var paged = await AllIdsAsync(_client, $"/Patient?family={family}&_count=5");
        Assert.Equal(12, paged.Count);
        Assert.Equal(ids, paged.ToHashSet());

        var post = await _client.PostAsync("/Patient/_search", new FormUrlEncodedContent([new("family", family), new("_count", "100")]));
        var postIds = (await post.JsonAsync()).GetProperty("entry").EnumerateArray().Select(e => e.GetProperty("resource").GetProperty("id").GetString()).ToHashSet();
        Assert.Equal(ids, postIds);

        var sorted = await (await _client.GetAsync($"/Patient?family={family}&_sort=-_lastUpdated&_count=3&_total=accurate")).JsonAsync();
        Assert.Equal(12, sorted.GetProperty("total").GetInt32());
    }

    [Fact]
    public async Task Transaction_ResolvesUrnUuids_AndCompartmentSearchFindsTheMembers()
    {
        var mrn = Guid.NewGuid().ToString("N");
        var other = await _client.SendAsync(Request(HttpMethod.Post, "/Patient", $$$"""{"resourceType":"Patient","identifier":[{"system":"urn:test:other","value":"{{{mrn}}}"}]}"""));
        var otherId = (await other.JsonAsync()).GetProperty("id").GetString();
        var transaction = $$$"""
        {"resourceType":"Bundle","type":"transaction","entry":[
          {"fullUrl":"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0","resource":{"resourceType":"Patient","identifier":[{"system":"urn:test:mrn","value":"{{{mrn}}}"}]},"request":{"method":"POST","url":"Patient"}},
          {"fullUrl":"urn:uuid:1d3151bd-1cbf-4d64-b04d-cd9187a4c6e1","resource":{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"subject":{"reference":"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"}},"request":{"method":"POST","url":"Encounter"}},
          {"resource":{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"},"encounter":{"reference":"urn:uuid:1d3151bd-1cbf-4d64-b04d-cd9187a4c6e1"}},"request":{"method":"POST","url":"Observation"}},
          {"resource":{"resourceType":"Observation","status":"final","code":{"text":"conditional ref"},"subject":{"reference":"Patient?identifier=urn:test:other|{{{mrn}}}"}},"request":{"method":"POST","url":"Observation"}},
          {"resource":{"resourceType":"Observation","status":"final","code":{"text":"conditional ref to an entry"},"subject":{"reference":"Patient?identifier=urn:test:mrn|{{{mrn}}}"}},"request":{"method":"POST","url":"Observation"}}
        ]}
        """;
        var response = await _client.SendAsync(Request(HttpMethod.Post, "/", transaction));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var bundle = await response.JsonAsync();
        Assert.Equal("transaction-response", bundle.GetProperty("type").GetString());
        var entries = bundle.GetProperty("entry").EnumerateArray().ToList();
        Assert.All(entries, e => Assert.StartsWith("201", e.GetProperty("response").GetProperty("status").GetString()));
        var patientId = entries[0].GetProperty("resource").GetProperty("id").GetString()!;
        var encounterId = entries[1].GetProperty("resource").GetProperty("id").GetString()!;
        Assert.Equal($"Patient/{patientId}", entries[1].GetProperty("resource").GetProperty("subject").GetProperty("reference").GetString());
        Assert.Equal($"Encounter/{encounterId}", entries[2].GetProperty("resource").GetProperty("encounter").GetProperty("reference").GetString());
        Assert.Equal($"Patient/{otherId}", entries[3].GetProperty("resource").GetProperty("subject").GetProperty("reference").GetString());
        Assert.Equal($"Patient/{patientId}", entries[4].GetProperty("resource").GetProperty("subject").GetProperty("reference").GetString());

        var compartment = await AllIdsAsync(_client, $"/Patient/{patientId}/Observation");
        Assert.Equal(2, compartment.Count);
        Assert.Single(await AllIdsAsync(_client, $"/Patient/{otherId}/Observation"));
        var included = await (await _client.GetAsync($"/Encounter?_id={encounterId}&_include=Encounter:subject&_revinclude=Observation:encounter")).JsonAsync();
        var modes = included.GetProperty("entry").EnumerateArray().Select(e => e.GetProperty("search").GetProperty("mode").GetString() + ":" + e.GetProperty("resource").GetProperty("resourceType").GetString()).Order().ToList();
        Assert.Equal(["include:Observation", "include:Patient", "match:Encounter"], modes);
    }

    [Fact]
    public async Task Transaction_WithOneBadEntry_WritesNothing()
    {
        var family = "Atomic" + Guid.NewGuid().ToString("N")[..8];
        var transaction = $$$"""
        {"resourceType":"Bundle","type":"transaction","entry":[
          {"fullUrl":"urn:uuid:2c3151bd-1cbf-4d64-b04d-cd9187a4c6e0","resource":{"resourceType":"Patient","name":[{"family":"{{{family}}}"}]},"request":{"method":"POST","url":"Patient"}},
          {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:99999999-1cbf-4d64-b04d-cd9187a4c6e0"}},"request":{"method":"POST","url":"Observation"}}
        ]}
        """;
        var response = await _client.SendAsync(Request(HttpMethod.Post, "/", transaction));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("entry 1", await response.OutcomeTextAsync());
        Assert.Empty(await AllIdsAsync(_client, $"/Patient?family={family}"));

        // A version conflict in the last entry also rolls back the first.
        var created = await (await _client.SendAsync(Request(HttpMethod.Post, "/Patient", PatientJson(family)))).JsonAsync();
        var id = created.GetProperty("id").GetString();
        var conflict = $$$"""
        {"resourceType":"Bundle","type":"transaction","entry":[
          {"resource":{"resourceType":"Patient","name":[{"family":"{{{family}}}-new"}]},"request":{"method":"POST","url":"Patient"}},
          {"resource":{"resourceType":"Patient","id":"{{{id}}}","name":[{"family":"{{{family}}}"}]},"request":{"method":"PUT","url":"Patient/{{{id}}}","ifMatch":"W/\"9\""}}
        ]}
        """;
        var conflictResponse = await _client.SendAsync(Request(HttpMethod.Post, "/", conflict));
        Assert.Equal(HttpStatusCode.PreconditionFailed, conflictResponse.StatusCode);
        Assert.Contains("entry 1", await conflictResponse.OutcomeTextAsync());
        Assert.Empty(await AllIdsAsync(_client, $"/Patient?family={family}-new"));
    }

    [Fact]
    public async Task Batch_ReportsEachEntry_Independently()
    {
        var batch = """
        {"resourceType":"Bundle","type":"batch","entry":[
          {"resource":{"resourceType":"Patient","name":[{"family":"BatchOk"}]},"request":{"method":"POST","url":"Patient"}},
          {"request":{"method":"GET","url":"Patient/definitely-missing"}}
        ]}
        """;
        var response = await _client.SendAsync(Request(HttpMethod.Post, "/", batch));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var entries = (await response.JsonAsync()).GetProperty("entry").EnumerateArray().ToList();
        Assert.StartsWith("201", entries[0].GetProperty("response").GetProperty("status").GetString());
        Assert.StartsWith("404", entries[1].GetProperty("response").GetProperty("status").GetString());
        Assert.Equal("OperationOutcome", entries[1].GetProperty("response").GetProperty("outcome").GetProperty("resourceType").GetString());
    }
}

public sealed class SqliteFhirRestTests(HeliosApiFactory factory) : FhirRestContract<HeliosApiFactory>(factory);

public sealed class PostgresFhirRestTests(PostgresHeliosApiFactory factory) : FhirRestContract<PostgresHeliosApiFactory>(factory);
