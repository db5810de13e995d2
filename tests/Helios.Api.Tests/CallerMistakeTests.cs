using System.Net;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using static Helios.Api.Tests.FhirJsonHttp;

namespace Helios.Api.Tests;

/// <summary>
/// Requests a hostile or careless client sends: every one must get a 4xx with an OperationOutcome that names the
/// problem, never a 500, and none may write anything. The three cases a random probe once answered with 500 come
/// first; then a seeded generator throws malformed bodies at every route that parses one.
/// </summary>
public sealed class CallerMistakeTests(HeliosApiFactory factory) : IClassFixture<HeliosApiFactory>
{
    private readonly HttpClient _client = factory.CreateClient();

    /// <summary>Every route that reads a request body, with the headers it needs.</summary>
    private static readonly (HttpMethod Method, string Url)[] s_bodyRoutes =
    [
        (HttpMethod.Post, "/Patient"),
        (HttpMethod.Put, "/Patient/caller-mistake"),
        (HttpMethod.Post, "/"),
        (HttpMethod.Post, "/$export"),
        (HttpMethod.Post, "/Patient/$export"),
        (HttpMethod.Post, "/Group/caller-mistake-group/$export"),
    ];

    [Theory]
    [InlineData("POST", "/$export", "[]")]
    [InlineData("POST", "/Patient", """{"resourceType":"","active":true}""")]
    [InlineData("POST", "/Patient", """{"resourceType":""}""")]
    [InlineData("PUT", "/Patient/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", """{"resourceType":"Patient","id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}""")]
    [InlineData("PUT", "/Patient/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "[]")]
    [InlineData("POST", "/", "[]")]
    [InlineData("POST", "/Patient", "[]")]
    public async Task ProbedCases_Get400WithAnOutcome(string method, string url, string body)
    {
        var response = await SendAsync(new HttpMethod(method), url, Encoding.UTF8.GetBytes(body));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.NotEmpty(await response.OutcomeTextAsync());
    }

    [Fact]
    public async Task MalformedBodies_OnEveryRoute_Get4xxWithAnOutcome_AndWriteNothing()
    {
        var before = await CountsAsync();
        var random = new Random(20261202);
        var cases = 0;
        foreach (var body in MalformedBodies(random, 60))
        {
            foreach (var (method, url) in s_bodyRoutes)
            {
                if (url.Contains("$export", StringComparison.Ordinal) && body.All(b => b is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t'))
                {
                    continue; // a POST kick-off without a body is a kick-off without parameters (ExportContract)
                }

                var response = await SendAsync(method, url, body);
                var status = (int)response.StatusCode;
                var shown = Encoding.UTF8.GetString(body.AsSpan(0, Math.Min(body.Length, 120)));
                Assert.True(status is >= 400 and < 500, $"{method} {url} with body '{shown}' got {status}: {await response.Content.ReadAsStringAsync()}");
                var outcome = await response.OutcomeTextAsync();
                Assert.False(string.IsNullOrWhiteSpace(outcome), $"{method} {url}: an empty diagnostic");
                Assert.DoesNotContain("failed to process", outcome, StringComparison.Ordinal);
                cases++;
            }
        }

        Assert.True(cases >= 300, $"{cases} cases");
        Assert.Equal(before, await CountsAsync());
    }

    [Fact]
    public async Task OddSearchParameters_NeverGet5xx_AndRefusalsCarryAnOutcome()
    {
        string[] fixedQueries =
        [
            "_lastUpdated=9999-12-31T23:59:59Z", "birthdate=9999", "birthdate=9999-12", "birthdate=gt9999-12-31", "birthdate=ap9999",
            "birthdate=0001", "birthdate=lt0001-01-01", "_lastUpdated=0001-01-01T00:00:00%2B14:00", "birthdate=2020-02-30",
            "_count=99999999999", "_count=-1", "_sort=-", "_sort=", "_cursor=%25%25%25", "_id=%00", "family=%27%3B%20DROP%20TABLE%20resources%3B--",
            "identifier=||", "general-practitioner=/", "general-practitioner:Bogus=x", "name:bogus=1", "gender:missing=maybe",
            "_include=*", "_revinclude=bogus", "_summary=bogus", "_total=bogus", "_has:Observation:patient:code=1",
        ];
        string[] names = ["_id", "_lastUpdated", "birthdate", "family", "name", "gender", "identifier", "general-practitioner", "organization", "_count", "_sort", "_include", "_revinclude", "_summary", "_total", "_cursor", "deceased", "address-postalcode", "phone", "_tag", "_profile", "unknown"];
        string[] modifiers = ["", "", ":exact", ":contains", ":missing", ":not", ":below", ":above", ":Patient", ":identifier", ":text", ":bogus"];
        string[] values = ["", "x", "9999", "9999-12-31T23:59:59Z", "0001-01-01", "gt2020", "ap", "eb", "sa9999", "1e999", "-0", "a|b", "|", "||", "Patient/", "Patient/x/_history/1", "%25", "%E2%82%AC", "%F0%9F%92%A9", "'%3B--", "%5C", "x,y,,", "true", "maybe", "-_id"];
        var random = new Random(4242);
        var queries = fixedQueries.ToList();
        for (var i = 0; i < 200; i++)
        {
            queries.Add($"{names[random.Next(names.Length)]}{modifiers[random.Next(modifiers.Length)]}={values[random.Next(values.Length)]}");
        }

        foreach (var query in queries)
        {
            foreach (var strict in new[] { false, true })
            {
                var request = Request(HttpMethod.Get, "/Patient?" + query, null, strict ? [("Prefer", "handling=strict")] : []);
                var response = await _client.SendAsync(request);
                var status = (int)response.StatusCode;
                Assert.True(status is 200 or (>= 400 and < 500), $"GET /Patient?{query} (strict: {strict}) got {status}: {await response.Content.ReadAsStringAsync()}");
                if (status >= 400)
                {
                    Assert.NotEmpty(await response.OutcomeTextAsync());
                }
            }
        }
    }

    [Fact]
    public async Task WithAuthorizationOff_AnEmptyBearerHeaderIsIgnored_AndDiscoverySaysAuthIsOff()
    {
        // Inferno sends "Authorization: Bearer " when no token is configured.
        var search = Request(HttpMethod.Get, "/Patient?_count=1", null, ("Authorization", "Bearer "));
        Assert.Equal(HttpStatusCode.OK, (await _client.SendAsync(search)).StatusCode);
        var kickoff = Request(HttpMethod.Get, "/$export?_type=Patient", null, ("Authorization", "Bearer "), ("Prefer", "respond-async"));
        Assert.Equal(HttpStatusCode.Accepted, (await _client.SendAsync(kickoff)).StatusCode);

        var discovery = await _client.GetAsync("/.well-known/smart-configuration");
        Assert.Equal(HttpStatusCode.NotFound, discovery.StatusCode);
        Assert.Contains("Authorization is off", await discovery.OutcomeTextAsync(), StringComparison.Ordinal);
        var metadata = await (await _client.GetAsync("/metadata")).JsonAsync();
        Assert.Contains("AUTHORIZATION IS OFF", metadata.GetProperty("rest")[0].GetProperty("security").GetProperty("description").GetString(), StringComparison.Ordinal);
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string url, byte[] body)
    {
        var request = Request(method, url, null, ("Prefer", "respond-async"));
        request.Content = new ByteArrayContent(body);
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/fhir+json");
        return await _client.SendAsync(request);
    }

    private async Task<string> CountsAsync() =>
        string.Join(",", (await factory.Services.GetRequiredService<Helios.Storage.IResourceStore>().CountByTypeAsync(CancellationToken.None))
            .OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => $"{e.Key}={e.Value}"));

    /// <summary>Bodies that are not a resource the route accepts: other JSON kinds, broken JSON, wrong resourceType
    /// kinds, mistyped elements, deep nesting, invalid UTF-8, huge and odd ids, resources of the wrong type.</summary>
    private static IEnumerable<byte[]> MalformedBodies(Random random, int count)
    {
        string[] fixedCases =
        [
            "[]", "[{}]", "\"Patient\"", "42", "-1e999", "true", "null", "", " ", "{", "}", "{}", "{\"resourceType\":null}",
            "{\"resourceType\":[]}", "{\"resourceType\":{}}", "{\"resourceType\":\"\"}", "{\"resourceType\":\"NoSuchType\"}",
            "{\"resourceType\":\"Patient\",\"id\":[]}", "{\"resourceType\":\"Patient\",\"active\":\"yes\"}",
            "{\"resourceType\":\"Patient\",\"birthDate\":\"1970-13-45\"}", "{\"resourceType\":\"Patient\",\"name\":{\"family\":\"x\"}}",
            "{\"resourceType\":\"Parameters\",\"parameter\":{}}", "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"_type\"}]}",
            "{\"resourceType\":\"Bundle\",\"type\":\"nonsense\"}", "{\"resourceType\":\"Patient\"} trailing", "{\"resourceType\":\"Patient\",}",
            "{'resourceType':'Patient'}", "{\"resourceType\":\"Patient\" /* comment */}",
        ];
        foreach (var text in fixedCases)
        {
            yield return Encoding.UTF8.GetBytes(text);
        }

        yield return Encoding.UTF8.GetBytes(new string('[', 5000) + new string(']', 5000));
        yield return Encoding.UTF8.GetBytes("{\"resourceType\":\"Patient\",\"id\":\"" + new string('a', 65) + "\",\"active\":true}");
        yield return [0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x3A, 0x31, 0x7D];

        string[] kinds = ["[]", "{}", "\"\"", "0", "true", "null", "\"x\"", "[1,2]", "{\"a\":1}"];
        string[] elements = ["resourceType", "id", "active", "name", "birthDate", "gender", "parameter", "type", "entry", "meta", "contained", "extension"];
        for (var i = 0; i < count - fixedCases.Length - 3; i++)
        {
            // A Patient with one to three elements replaced by values of a random JSON kind (sometimes no resourceType).
            var parts = new List<string>();
            if (random.Next(5) > 0)
            {
                parts.Add($"\"resourceType\":{(random.Next(4) == 0 ? kinds[random.Next(kinds.Length)] : "\"Patient\"")}");
            }

            for (var j = random.Next(1, 4); j > 0; j--)
            {
                parts.Add($"\"{elements[random.Next(elements.Length)]}\":{kinds[random.Next(kinds.Length)]}");
            }

            // One element that no route accepts, so the body is never a valid resource by chance.
            string[] poison = ["\"active\":\"yes\"", "\"gender\":1", "\"birthDate\":true", "\"id\":[]", "\"unknownElement\":1", "\"resourceType\":{}", "\"name\":[1]"];
            parts.Insert(random.Next(parts.Count + 1), poison[random.Next(poison.Length)]);
            var json = "{" + string.Join(",", parts) + "}";
            if (random.Next(6) == 0)
            {
                json = json[..random.Next(1, json.Length)]; // cut short
            }

            yield return Encoding.UTF8.GetBytes(json);
        }
    }
}
