using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Helios.Api.Tests;

internal static class FhirJsonHttp
{
    public static StringContent Body(string json) => new(json, Encoding.UTF8, "application/fhir+json");

    public static async Task<JsonElement> JsonAsync(this HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.Clone();
    }

    public static async Task<string> OutcomeTextAsync(this HttpResponseMessage response)
    {
        Assert.Equal("application/fhir+json", response.Content.Headers.ContentType?.MediaType);
        var json = await response.JsonAsync();
        Assert.Equal("OperationOutcome", json.GetProperty("resourceType").GetString());
        return string.Join(" | ", json.GetProperty("issue").EnumerateArray().Select(i => i.GetProperty("diagnostics").GetString()));
    }

    public static HttpRequestMessage Request(HttpMethod method, string url, string? json = null, params (string Name, string Value)[] headers)
    {
        var request = new HttpRequestMessage(method, url);
        if (json is not null)
        {
            request.Content = Body(json);
        }

        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/fhir+json"));
        return request;
    }

    /// <summary>Follows next links and returns every match id.</summary>
    public static async Task<List<string>> AllIdsAsync(HttpClient client, string url)
    {
        var ids = new List<string>();
        string? next = url;
        while (next is not null)
        {
            var bundle = await (await client.GetAsync(next)).JsonAsync();
            if (bundle.TryGetProperty("entry", out var entries))
            {
                ids.AddRange(entries.EnumerateArray()
                    .Where(e => e.GetProperty("search").GetProperty("mode").GetString() == "match")
                    .Select(e => e.GetProperty("resource").GetProperty("id").GetString()!));
            }

            next = bundle.GetProperty("link").EnumerateArray()
                .Where(l => l.GetProperty("relation").GetString() == "next")
                .Select(l => l.GetProperty("url").GetString())
                .FirstOrDefault();
        }

        return ids;
    }
}
