using System.Text;
using System.Text.Json;
using CsCheck;

namespace Helios.Api.Tests;

/// <summary>An embedded Api for input probes: few active exports per client, so accepted kick-offs soon turn into
/// 429s instead of piling up work.</summary>
public sealed class FuzzFactory : HeliosApiFactory
{
    public FuzzFactory()
    {
        ExportTestSettings.Apply(this, slow: false);
        Settings["Helios:Export:MaxActivePerClient"] = "2";
    }
}

/// <summary>
/// Random kick-offs at every level, by GET query and by POST Parameters (or junk bodies), with random Prefer and
/// Accept headers: never a 5xx, and every 4xx is an OperationOutcome with a diagnostic.
/// </summary>
public sealed class KickoffFuzzTests(FuzzFactory factory) : IClassFixture<FuzzFactory>
{
    private static readonly Gen<string> Names = Gen.OneOf(
        Gen.OneOf("_type", "_since", "_until", "_outputFormat", "_typeFilter", "_elements", "patient", "includeAssociatedData",
            "organizeOutputBy", "allowPartialManifests", "_count", "_type:missing", "x", "", "_TYPE", "_since[]"),
        Gen.String[0, 12]);

    private static readonly Gen<string> Values = Gen.OneOf(
        Gen.OneOf("Patient", "Patient,Observation", "Observation,,", "2024-01-01T00:00:00Z", "2024-13-45", "9999-12-31T23:59:59+14:00",
            "application/fhir+ndjson", "ndjson", "text/csv", "Patient?gender=male", "Observation?code=http://loinc.org|4548-4,Patient?x=1",
            "Patient/1", "Patient/..%2F", "true", "false", "LatestProvenanceResources", "_referenced", "id,meta", "Patient.name",
            "%", "%zz", "%00", "'; DROP TABLE export_jobs; --", "\" OR 1=1 --", "é😀\u200b", new string('x', 3000)),
        Gen.String,
        Gen.Char.Array[0, 40].Select(c => new string(c)));

    private static readonly Gen<string> Paths = Gen.OneOf(
        Gen.Const("/$export"), Gen.Const("/Patient/$export"),
        Gen.OneOf("g1", "..", "%2F", "a%20b", "' OR '1'='1", new string('9', 300)).Select(id => $"/Group/{id}/$export"));

    [Fact]
    public async Task RandomKickoffs_NeverFail_AndEveryRefusalIsAnOperationOutcome()
    {
        var client = factory.CreateClient();
        var statuses = new System.Collections.Concurrent.ConcurrentDictionary<int, int>();
        var gen = Gen.Select(Paths, Gen.Select(Names, Values).Array[0, 6], Gen.Int[0, 9], Gen.OneOf("respond-async", "respond-async, handling=lenient", "respond-async; handling=strict", "", "wait=10"),
            Gen.OneOf("application/fhir+json", "", "*/*", "text/html", "application/json;q=0.1"));
        await gen.SampleAsync(async (path, pairs, shape, prefer, accept) =>
        {
            var post = shape >= 6;
            var query = post && shape != 9 ? "" : "?" + string.Join("&", pairs.Select(p => Uri.EscapeDataString(p.Item1) + "=" + Uri.EscapeDataString(p.Item2)));
            var request = new HttpRequestMessage(post ? HttpMethod.Post : HttpMethod.Get, path + query);
            if (prefer.Length > 0)
            {
                request.Headers.TryAddWithoutValidation("Prefer", prefer);
            }

            if (accept.Length > 0)
            {
                request.Headers.TryAddWithoutValidation("Accept", accept);
            }

            if (post)
            {
                var body = shape switch
                {
                    6 or 9 => JsonSerializer.Serialize(new
                    {
                        resourceType = "Parameters",
                        parameter = pairs.Select(p => new Dictionary<string, object> { ["name"] = p.Item1, ["valueString"] = p.Item2 }),
                    }),
                    7 => "{\"resourceType\":\"Parameters\",\"parameter\":" + string.Join(",", pairs.Select(p => p.Item2)) + "}",
                    _ => string.Concat(pairs.Select(p => p.Item1 + p.Item2)),
                };
                request.Content = new StringContent(body, Encoding.UTF8, "application/fhir+json");
            }

            var response = await client.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            statuses.AddOrUpdate((int)response.StatusCode, 1, (_, n) => n + 1);
            Assert.True((int)response.StatusCode < 500, $"{request.Method} {path}{query}: {(int)response.StatusCode} {text}");
            if ((int)response.StatusCode >= 400)
            {
                var outcome = JsonDocument.Parse(text).RootElement;
                Assert.Equal("OperationOutcome", outcome.GetProperty("resourceType").GetString());
                Assert.False(string.IsNullOrWhiteSpace(outcome.GetProperty("issue")[0].GetProperty("diagnostics").GetString()));
            }
        }, iter: 10_000, threads: 2);

        Assert.True(statuses.Values.Sum() >= 10_000, $"{statuses.Values.Sum()} requests");

        // The probe reached past validation too (accepted kick-offs and the per-client limit), not only refusals.
        Assert.True(statuses.Keys.Count(s => s >= 400) >= 2, string.Join(", ", statuses.Select(s => $"{s.Key}: {s.Value}")));
        Assert.True(statuses.ContainsKey(202) || statuses.ContainsKey(429), string.Join(", ", statuses.Select(s => $"{s.Key}: {s.Value}")));
        Console.WriteLine("kick-off probe statuses: " + string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}: {s.Value}")));
    }
}
