using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace Helios.Api.Tests;

/// <summary>A Bulk Data client for tests: kick-off, poll, download (following redirects to presigned S3 URLs over the
/// network, which the in-memory test server cannot do).</summary>
internal sealed class ExportClient(HttpClient api, Func<string, Task<string>>? diagnose = null)
{
    private static readonly HttpClient s_network = new();

    public HttpClient Api => api;

    public async Task<HttpResponseMessage> SendKickoffAsync(string path, HttpMethod? method = null, string? body = null, params (string Name, string Value)[] headers)
    {
        var request = new HttpRequestMessage(method ?? HttpMethod.Get, path);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/fhir+json"));
        request.Headers.TryAddWithoutValidation("Prefer", "respond-async");
        foreach (var (name, value) in headers)
        {
            request.Headers.Remove(name);
            request.Headers.TryAddWithoutValidation(name, value);
        }

        if (body is not null)
        {
            request.Content = FhirJsonHttp.Body(body);
        }

        return await api.SendAsync(request);
    }

    /// <summary>Kicks off and returns the (absolute) status URL.</summary>
    public async Task<string> KickoffAsync(string path, params (string Name, string Value)[] headers)
    {
        var response = await SendKickoffAsync(path, null, null, headers);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"kick-off {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        var location = response.Content.Headers.ContentLocation ?? (response.Headers.TryGetValues("Content-Location", out var v) ? new Uri(v.Single()) : null);
        Assert.NotNull(location);
        Assert.True(location!.IsAbsoluteUri, "Content-Location must be absolute");
        return location.AbsoluteUri;
    }

    public async Task<HttpResponseMessage> PollAsync(string statusUrl)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, statusUrl);
        // Inferno sends an empty bearer token on every poll when it has none; with auth off it must be served normally.
        if (api.DefaultRequestHeaders.Authorization is null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", "Bearer ");
        }

        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        return await api.SendAsync(request);
    }

    /// <summary>Polls until the status is no longer 202 and returns the manifest (asserting 200).</summary>
    public async Task<JsonElement> WaitForManifestAsync(string statusUrl, TimeSpan? timeout = null)
    {
        var response = await WaitForEndAsync(statusUrl, timeout);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"status {(int)response.StatusCode}: {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var document = JsonDocument.Parse(text);
        return document.RootElement.Clone();
    }

    public async Task<HttpResponseMessage> WaitForEndAsync(string statusUrl, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(90));
        while (true)
        {
            var response = await PollAsync(statusUrl);
            if (response.StatusCode != HttpStatusCode.Accepted)
            {
                return response;
            }

            Assert.True(response.Headers.Contains("Retry-After"), "a 202 status must carry Retry-After");
            Assert.Matches(@"^(planning|\d{1,2}% complete.*)$", response.Headers.GetValues("X-Progress").Single());
            if (DateTime.UtcNow > deadline)
            {
                var details = diagnose is null ? string.Empty : await diagnose(statusUrl[(statusUrl.LastIndexOf('/') + 1)..]);
                Assert.Fail($"export at {statusUrl} did not finish in time ({response.Headers.GetValues("X-Progress").Single()}). {details}");
            }

            await Task.Delay(100);
        }
    }

    /// <summary>Downloads a file URL from the manifest, following a redirect to a presigned URL over the network.</summary>
    public async Task<HttpResponseMessage> GetFileAsync(string url, params (string Name, string Value)[] headers)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/fhir+ndjson"));
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        var response = url.StartsWith("http://localhost/", StringComparison.Ordinal) ? await api.SendAsync(request) : await s_network.SendAsync(request);
        if (response.StatusCode is HttpStatusCode.Redirect or HttpStatusCode.TemporaryRedirect or HttpStatusCode.SeeOther)
        {
            var target = response.Headers.Location!;
            return await s_network.GetAsync(target.IsAbsoluteUri ? target : new Uri(new Uri(url), target));
        }

        return response;
    }

    /// <summary>Asserts the export holds exactly the expected types, each with its count of lines and every id once.</summary>
    public static void AssertExactlyOnce(IReadOnlyDictionary<string, long> expected, Dictionary<string, List<JsonElement>> lines)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), lines.Keys.Order(StringComparer.Ordinal));
        foreach (var (type, count) in expected)
        {
            Assert.True(count == lines[type].Count, $"{type}: expected {count} lines, exported {lines[type].Count}");
            Assert.Equal(count, lines[type].Select(l => l.GetProperty("id").GetString()).Distinct().Count());
        }
    }

    /// <summary>Downloads every output file: lines per type, asserting each file is NDJSON of its manifest type and
    /// that the manifest count matches.</summary>
    public async Task<Dictionary<string, List<JsonElement>>> DownloadOutputAsync(JsonElement manifest)
    {
        var result = new Dictionary<string, List<JsonElement>>(StringComparer.Ordinal);
        foreach (var item in manifest.GetProperty("output").EnumerateArray())
        {
            var type = item.GetProperty("type").GetString()!;
            var url = item.GetProperty("url").GetString()!;
            Assert.StartsWith("http", url, StringComparison.Ordinal);
            var response = await GetFileAsync(url);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET {url}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            Assert.StartsWith("application/fhir+ndjson", response.Content.Headers.ContentType?.ToString(), StringComparison.Ordinal);
            var text = await response.Content.ReadAsStringAsync();
            Assert.EndsWith("\n", text, StringComparison.Ordinal);
            var lines = text[..^1].Split('\n');
            Assert.Equal(item.GetProperty("count").GetInt64(), lines.Length);
            var list = result.TryGetValue(type, out var existing) ? existing : result[type] = [];
            foreach (var line in lines)
            {
                using var document = JsonDocument.Parse(line);
                Assert.Equal(type, document.RootElement.GetProperty("resourceType").GetString());
                list.Add(document.RootElement.Clone());
            }
        }

        return result;
    }

    /// <summary>Every diagnostic of every OperationOutcome in the manifest's error files.</summary>
    public async Task<List<string>> DownloadErrorsAsync(JsonElement manifest)
    {
        var diagnostics = new List<string>();
        foreach (var item in manifest.GetProperty("error").EnumerateArray())
        {
            var response = await GetFileAsync(item.GetProperty("url").GetString()!);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            foreach (var line in (await response.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                using var document = JsonDocument.Parse(line);
                diagnostics.AddRange(document.RootElement.GetProperty("issue").EnumerateArray().Select(i => i.GetProperty("diagnostics").GetString() ?? string.Empty));
            }
        }

        return diagnostics;
    }

    public static Dictionary<string, HashSet<string>> IdsByType(Dictionary<string, List<JsonElement>> lines)
    {
        var result = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var (type, resources) in lines)
        {
            var ids = resources.Select(r => r.GetProperty("id").GetString()!).ToList();
            Assert.True(ids.Count == ids.Distinct(StringComparer.Ordinal).Count(), $"{type}: a resource was exported twice");
            result[type] = ids.ToHashSet(StringComparer.Ordinal);
        }

        return result;
    }
}
