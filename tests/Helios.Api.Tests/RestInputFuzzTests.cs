using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CsCheck;
using Helios.Storage;
using Helios.Storage.Synthetic;
using Hl7.Fhir.Serialization;
using Microsoft.Extensions.DependencyInjection;

namespace Helios.Api.Tests;

/// <summary>An embedded Api for the REST probes: a 256 KiB body limit, so oversized bodies are cheap to make.</summary>
public sealed class RestFuzzFactory : HeliosApiFactory
{
    public RestFuzzFactory()
    {
        MaxBodyBytes = 256 * 1024;
        ExportTestSettings.Apply(this, slow: false);
        // Tens of thousands of requests: a log line per request and per statement would be most of the run.
        Settings["Logging:LogLevel:Default"] = "Warning";
    }
}

/// <summary>The same on PostgreSQL.</summary>
public sealed class PostgresRestFuzzFactory : HeliosApiFactory
{
    public PostgresRestFuzzFactory()
        : base(postgres: true)
    {
        MaxBodyBytes = 256 * 1024;
        ExportTestSettings.Apply(this, slow: false);
        // Tens of thousands of requests: a log line per request and per statement would be most of the run.
        Settings["Logging:LogLevel:Default"] = "Warning";
    }
}

/// <summary>
/// Property tests of the REST surface with outside input, 10,000 cases each: mutated resources as bodies (fields dropped
/// or duplicated, wrong JSON kinds, huge strings, deep nesting, invalid UTF-8, truncation, wrong types and ids, junk),
/// random search parameters (names, modifiers, prefixes, escapes, unicode, SQL text), and random conditional and
/// content headers. Never a 5xx; every 4xx is an OperationOutcome with a diagnostic; a refused write leaves the store
/// exactly as it was (its sequence, its clock and every table's row count, and the target's stored bytes); a search
/// changes nothing and a value that matches no stored text returns nothing, whatever SQL it carries.
/// </summary>
public abstract class RestInputFuzzContract<TFactory>(TFactory factory) : IClassFixture<TFactory>
    where TFactory : HeliosApiFactory
{
    private const int Cases = 10_000;

    /// <summary>The store's state after the previous case (the probes run one at a time, and nothing else writes).</summary>
    private string? _lastState;

    /// <summary>In no stored resource: a search value carrying it must match nothing.</summary>
    private const string Marker = "qzxjv";

    private static readonly string[] s_types = ["Patient", "Observation", "Encounter", "Condition", "Organization", "Practitioner", "MedicationRequest", "Claim", "Group"];

    [Fact]
    public async Task MutatedResourceBodies_NeverFail_AndARefusedWriteChangesNothing()
    {
        var corpus = await CorpusAsync();
        var client = factory.CreateClient();
        var statuses = new SortedDictionary<int, int>();
        var gen = Gen.Select(Gen.Int[0, corpus.Count - 1], Gen.Int[0, 15], Gen.Int, Gen.Int[0, 9], Gen.Int[0, 5]);
        await gen.SampleAsync(async (index, mutation, seed, operation, contentType) =>
        {
            var random = new Random(seed);
            var original = corpus[index];
            var type = original["resourceType"]!.GetValue<string>();
            var id = original["id"]?.GetValue<string>() ?? "fuzz-" + index;
            var body = Mutate(original, mutation, random);
            var (method, url) = operation switch
            {
                <= 3 => (HttpMethod.Put, $"/{type}/{id}"),
                4 => (HttpMethod.Put, $"/{s_types[random.Next(s_types.Length)]}/{RandomId(random)}"),
                <= 6 => (HttpMethod.Post, $"/{type}"),
                7 => (HttpMethod.Post, "/"),
                _ => (HttpMethod.Post, "/"),
            };
            if (operation >= 7)
            {
                body = BundleOf(operation == 7 ? "transaction" : "batch", type, id, body, random);
            }

            var request = new HttpRequestMessage(method, url) { Content = new ByteArrayContent(body) };
            request.Content.Headers.TryAddWithoutValidation("Content-Type", contentType switch
            {
                <= 2 => "application/fhir+json",
                3 => "application/json; charset=utf-8",
                4 => "application/fhir+xml",
                _ => "text/plain",
            });
            var before = await StoreStateBeforeAsync(type, id);
            var response = await client.SendAsync(request);
            var status = (int)response.StatusCode;
            statuses[status] = statuses.GetValueOrDefault(status) + 1;

            await AssertAnswerAsync(request, url, response);
            if (status >= 400)
            {
                Assert.True(before == await StoreStateAfterAsync(type, id), $"a refused {method} {url} ({status}) changed the store");
            }
            else
            {
                _lastState = null;
            }
        }, iter: Cases, threads: 1);

        Console.WriteLine($"REST body probe ({factory.GetType().Name}): " + string.Join(", ", statuses.Select(s => $"{s.Key}: {s.Value}")));
        Assert.True(statuses.Where(s => s.Key < 300).Sum(s => s.Value) > Cases / 20, "too few writes were accepted: the probe only tested the parser's front door");
        Assert.True(statuses.ContainsKey(413) && statuses.ContainsKey(415) && statuses.ContainsKey(400));
    }

    [Fact]
    public async Task RandomSearches_NeverFail_ChangeNothing_AndSqlTextMatchesNothing()
    {
        await CorpusAsync();
        var client = factory.CreateClient();
        var statuses = new SortedDictionary<int, int>();
        var names = Gen.OneOf(
            Gen.OneOf("name", "family", "given", "gender", "birthdate", "identifier", "code", "subject", "patient", "date", "value-quantity",
                "status", "_id", "_lastUpdated", "address-city", "general-practitioner", "_count", "_sort", "_include", "_revinclude",
                "_elements", "_summary", "_total", "_has:Observation:subject:code", "subject:Patient.name", "subject.name", "_type", "_format", "_text"),
            Gen.String[0, 10]);
        var modifiers = Gen.OneOf("", "", "", ":exact", ":contains", ":missing", ":not", ":text", ":above", ":below", ":identifier", ":of-type", ":Patient", ":in", ":x", ":");
        var prefixes = Gen.OneOf("", "", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap", "xx");
        var values = Gen.OneOf(
            Gen.OneOf("male", "2020", "2020-01-01T00:00:00Z", "2020-13-01", "5.4|http://unitsofmeasure.org|kg", "http://loinc.org|8867-4", "|x", "x|",
                "Patient/pat-1", "pat-1", "true", "1e400", "-0", "NaN", "a,b,c", "a\\,b", "a\\|b", "a\\$b", "\\", "%", "_", "*", "é😀\u200b", "\u0000",
                new string('x', 5000)),
            Gen.String,
            Gen.Const(0).Select(_ => SqlText()));
        var gen = Gen.Select(Gen.Int[0, s_types.Length - 1], Gen.Select(names, modifiers, prefixes, values).Array[1, 4], Gen.Bool, Gen.Int[0, 3]);
        await gen.SampleAsync(async (typeIndex, parameters, post, shape) =>
        {
            var type = s_types[typeIndex];
            var pairs = parameters.Select(p => (Name: p.Item1 + p.Item2, Value: p.Item3 + p.Item4)).ToList();
            var encoded = string.Join("&", pairs.Select(p => Uri.EscapeDataString(p.Name) + "=" + Uri.EscapeDataString(p.Value)));
            var request = post
                ? new HttpRequestMessage(HttpMethod.Post, $"/{type}/_search") { Content = new StringContent(encoded, Encoding.UTF8, "application/x-www-form-urlencoded") }
                : new HttpRequestMessage(HttpMethod.Get, $"/{type}?{encoded}");
            var before = await StoreStateBeforeAsync(type, "pat-1");
            var response = await client.SendAsync(request);
            var status = (int)response.StatusCode;
            statuses[status] = statuses.GetValueOrDefault(status) + 1;

            var text = await AssertAnswerAsync(request, request.RequestUri!.ToString(), response);
            Assert.True(before == await StoreStateAfterAsync(type, "pat-1"), "a search changed the store");
            if (status == 200)
            {
                var bundle = JsonDocument.Parse(text).RootElement;
                Assert.Equal("Bundle", bundle.GetProperty("resourceType").GetString());
                // One plain string parameter whose value carries the marker: whatever SQL text it holds, nothing matches.
                // (Patient, Practitioner and Organization define these; elsewhere an unknown parameter is ignored.)
                if (shape == 0 && pairs.Count == 1 && type is "Patient" or "Practitioner" or "Organization"
                    && pairs[0].Name is "name" or "address-city" or "name:exact" or "name:contains" && pairs[0].Value.Contains(Marker, StringComparison.Ordinal))
                {
                    Assert.Equal(0, bundle.TryGetProperty("entry", out var entries) ? entries.GetArrayLength() : 0);
                }
            }
        }, iter: Cases, threads: 1);

        // SQL text with the marker, through every string-like parameter: nothing matches, nothing changes.
        var probes = 0;
        foreach (var type in new[] { "Patient", "Organization", "Practitioner" })
        {
            foreach (var name in new[] { "name", "name:exact", "name:contains", "address-city", "identifier", "_id" })
            {
                for (var i = 0; i < 20; i++)
                {
                    var value = SqlText();
                    var response = await client.GetAsync($"/{type}?{name}={Uri.EscapeDataString(value)}");
                    var text = await response.Content.ReadAsStringAsync();
                    Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.BadRequest, $"{name}={value}: {(int)response.StatusCode} {text}");
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        var bundle = JsonDocument.Parse(text).RootElement;
                        Assert.True(!bundle.TryGetProperty("entry", out var entries) || entries.GetArrayLength() == 0, $"{type}?{name}={value} matched: {text[..Math.Min(300, text.Length)]}");
                    }

                    probes++;
                }
            }
        }

        Console.WriteLine($"search probe ({factory.GetType().Name}): " + string.Join(", ", statuses.Select(s => $"{s.Key}: {s.Value}")) + $"; {probes} SQL-text probes matched nothing");
        Assert.True(statuses.GetValueOrDefault(200) > Cases / 10);
    }

    [Fact]
    public async Task RandomHeaders_NeverFail_AndARefusedConditionalWriteChangesNothing()
    {
        var corpus = await CorpusAsync();
        var client = factory.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
        var fileUrl = await ExportedFileUrlAsync(client);
        var statuses = new SortedDictionary<int, int>();
        var etags = Gen.OneOf(Gen.OneOf("W/\"1\"", "W/\"2\"", "\"1\"", "*", "W/\"\"", "W/\"-1\"", "W/\"99999999999999999999\"", "W/\"abc\"", "1", "", "\"", "W/", "W/\"1\", W/\"2\""), Gen.String[0, 20]);
        var prefers = Gen.OneOf(Gen.OneOf("return=minimal", "return=representation", "return=OperationOutcome", "return=", "handling=strict", "handling=lenient",
            "respond-async", "return=minimal, handling=strict", "wait=x"), Gen.String[0, 30]);
        var accepts = Gen.OneOf(Gen.OneOf("application/fhir+json", "application/json", "application/fhir+xml", "text/html", "*/*", "application/*",
            "application/fhir+json;q=0", "application/fhir+ndjson", "application/fhir+json; fhirVersion=4.0", "application/fhir+json; fhirVersion=3.0", ";;;"), Gen.String[0, 30]);
        var ranges = Gen.OneOf(Gen.OneOf("bytes=0-10", "bytes=-5", "bytes=5-", "bytes=10-5", "bytes=0-0,2-3", "bytes=99999999-", "bytes=-0", "bytes=", "items=0-1",
            "bytes=0-99999999999999999999", "bytes=a-b"), Gen.String[0, 20]);
        var dates = Gen.OneOf(Gen.OneOf("Wed, 21 Oct 2015 07:28:00 GMT", "yesterday", "", "Thu, 01 Jan 2099 00:00:00 GMT"), Gen.String[0, 20]);
        var gen = Gen.Select(Gen.Int[0, corpus.Count - 1], Gen.Int[0, 6], Gen.Select(etags, prefers, accepts, ranges, dates), Gen.Int[0, 31]);
        await gen.SampleAsync(async (index, operation, headers, mask) =>
        {
            var (etag, prefer, accept, range, date) = headers;
            var resource = corpus[index];
            var type = resource["resourceType"]!.GetValue<string>();
            var id = resource["id"]!.GetValue<string>();
            var request = operation switch
            {
                0 or 1 => new HttpRequestMessage(HttpMethod.Put, $"/{type}/{id}") { Content = new StringContent(resource.ToJsonString(), Encoding.UTF8, "application/fhir+json") },
                2 => new HttpRequestMessage(HttpMethod.Delete, $"/{type}/{id}"),
                3 => new HttpRequestMessage(HttpMethod.Post, $"/{type}") { Content = new StringContent(resource.ToJsonString(), Encoding.UTF8, "application/fhir+json") },
                4 => new HttpRequestMessage(HttpMethod.Get, $"/{type}/{id}"),
                5 => new HttpRequestMessage(HttpMethod.Get, $"/{type}?_count=2"),
                _ => new HttpRequestMessage(HttpMethod.Get, fileUrl),
            };
            foreach (var (bit, name, value) in new[] { (1, "If-Match", etag), (2, "Prefer", prefer), (4, "Accept", accept), (8, "Range", range), (16, operation == 3 ? "If-None-Exist" : "If-None-Match", operation == 3 ? "identifier=" + etag : etag) })
            {
                if ((mask & bit) != 0 || (bit == 8 && operation == 6))
                {
                    request.Headers.TryAddWithoutValidation(name, value);
                }
            }

            if (mask % 3 == 0)
            {
                request.Headers.TryAddWithoutValidation("If-Modified-Since", date);
            }

            var before = await StoreStateBeforeAsync(type, id);
            var response = await client.SendAsync(request);
            var status = (int)response.StatusCode;
            statuses[status] = statuses.GetValueOrDefault(status) + 1;

            await AssertAnswerAsync(request, request.RequestUri!.ToString(), response);
            if (status >= 400)
            {
                Assert.True(before == await StoreStateAfterAsync(type, id), $"a refused {request.Method} {request.RequestUri} ({status}) changed the store");
            }
            else
            {
                _lastState = null;
            }
        }, iter: Cases, threads: 1);

        Console.WriteLine($"header probe ({factory.GetType().Name}): " + string.Join(", ", statuses.Select(s => $"{s.Key}: {s.Value}")));
        Assert.True(statuses.ContainsKey(412) && statuses.ContainsKey(200), string.Join(", ", statuses.Select(s => $"{s.Key}: {s.Value}")));
        // Ranges are answered by the Api for local files (S3 files redirect to the object store, which answers them).
        Assert.True(factory.IsPostgres || statuses.ContainsKey(206), "no Range request was answered with 206");
    }

    /// <summary>No 5xx; a 4xx carries an OperationOutcome with a diagnostic.</summary>
    private static async Task<string> AssertAnswerAsync(HttpRequestMessage request, string url, HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        var status = (int)response.StatusCode;
        Assert.True(status < 500, $"{request.Method} {url}: {status} {text[..Math.Min(2000, text.Length)]}");
        if (status >= 400)
        {
            JsonElement outcome;
            try
            {
                outcome = JsonDocument.Parse(text).RootElement;
            }
            catch (JsonException)
            {
                Assert.Fail($"{request.Method} {url}: {status} with a body that is not JSON: {text[..Math.Min(500, text.Length)]}");
                throw;
            }

            Assert.True(outcome.GetProperty("resourceType").GetString() == "OperationOutcome", $"{request.Method} {url}: {status} {text[..Math.Min(500, text.Length)]}");
            Assert.False(string.IsNullOrWhiteSpace(outcome.GetProperty("issue")[0].GetProperty("diagnostics").GetString()), $"{status} without a diagnostic");
        }

        return text;
    }

    /// <summary>The resources the probes start from: the synthetic data set (stored first), and a Synthea patient's
    /// record when the shared data is present.</summary>
    private async Task<List<JsonObject>> CorpusAsync()
    {
        var generated = new SyntheticDataGenerator(3).Generate(4).ToList();
        var store = factory.Services.GetRequiredService<IResourceStore>();
        if ((await store.CountByTypeAsync(CancellationToken.None)).Count == 0)
        {
            await store.WriteAsync(generated.Select(r => ResourceWrite.Update(r)).ToList(), CancellationToken.None);
        }

        var serializer = new FhirJsonSerializer();
        var corpus = generated.Select(r => JsonNode.Parse(serializer.SerializeToString(r))!.AsObject()).ToList();
        if (SyntheaData.BundleDirectory is not null)
        {
            var file = SyntheaData.BundleFiles().First(f => Path.GetFileName(f).StartsWith("patient-", StringComparison.Ordinal));
            var bundle = JsonNode.Parse(SyntheaData.ReadText(file))!;
            corpus.AddRange(bundle["entry"]!.AsArray().Select(e => e!["resource"]!.AsObject()).Where(r => r["id"] is not null).Take(150)
                .Select(r => JsonNode.Parse(r.ToJsonString())!.AsObject()));
        }

        return corpus;
    }

    private static string RandomId(Random random) => random.Next(6) switch
    {
        0 => "..%2F..%2Fetc",
        1 => new string('a', 65),
        2 => "a b",
        3 => "é",
        4 => "pat-1",
        _ => "fz" + random.Next(1000),
    };

    private static string SqlText()
    {
        string[] parts = ["'", "''", "\"", "\\", ";", "--", "/*", "*/", "%", "_", "$$", "$1", "@p0", "?", ":name", "E'\\x41'", "' OR '1'='1", "\" OR 1=1 --",
            "'; DROP TABLE resources; --", "') OR ('a'='a", "\\'", "UNION SELECT json FROM resources", "||", "~", "*", "[", "]", "\0x27", "\u02bc"];
        var random = Random.Shared;
        var text = new StringBuilder();
        for (var i = random.Next(1, 5); i > 0; i--)
        {
            text.Append(parts[random.Next(parts.Length)]);
        }

        return text.Insert(random.Next(text.Length + 1), Marker).ToString();
    }

    private static byte[] BundleOf(string kind, string type, string id, byte[] resource, Random random)
    {
        var method = random.Next(3) switch { 0 => "POST", 1 => "PUT", _ => "DELETE" };
        var head = Encoding.UTF8.GetBytes($$"""{"resourceType":"Bundle","type":"{{kind}}","entry":[{"fullUrl":"urn:uuid:{{Guid.NewGuid()}}","request":{"method":"{{method}}","url":"{{(method == "POST" ? type : $"{type}/{id}")}}"},"resource":""");
        var tail = Encoding.UTF8.GetBytes("}]}");
        return [.. head, .. resource, .. tail];
    }

    /// <summary>One of the mutations applied to a resource, as the bytes sent.</summary>
    private static byte[] Mutate(JsonObject original, int mutation, Random random)
    {
        var node = JsonNode.Parse(original.ToJsonString())!.AsObject();
        switch (mutation)
        {
            case 0:
                break;
            case 1:
                // A field dropped, at any depth.
                if (RandomProperty(node, random) is { } drop)
                {
                    drop.Parent.Remove(drop.Name);
                }

                break;
            case 2:
                // A field duplicated (text level: JSON objects in System.Text.Json cannot hold the same name twice).
                if (RandomProperty(node, random) is { } dup)
                {
                    var text = node.ToJsonString();
                    var fragment = $"\"{dup.Name}\":{dup.Parent[dup.Name]?.ToJsonString() ?? "null"}";
                    var at = text.IndexOf(fragment, StringComparison.Ordinal);
                    return Encoding.UTF8.GetBytes(at < 0 ? text : text.Insert(at, fragment + ","));
                }

                break;
            case 3:
                // A value of the wrong JSON kind.
                if (RandomProperty(node, random) is { } wrong)
                {
                    wrong.Parent[wrong.Name] = random.Next(7) switch
                    {
                        0 => JsonValue.Create(42),
                        1 => JsonValue.Create("text"),
                        2 => JsonValue.Create(true),
                        3 => null,
                        4 => new JsonArray(JsonValue.Create(1), JsonValue.Create("x")),
                        5 => new JsonObject { ["a"] = 1 },
                        _ => JsonValue.Create(1e300),
                    };
                }

                break;
            case 4:
                // A huge string: some under the body limit, some over it.
                if (RandomProperty(node, random) is { } huge)
                {
                    huge.Parent[huge.Name] = new string('x', random.Next(2) == 0 ? random.Next(1000, 200_000) : random.Next(300_000, 1_000_000));
                }

                break;
            case 5:
            {
                // Deep nesting.
                var depth = random.Next(50, 20_000);
                var open = random.Next(2) == 0 ? "[" : "{\"a\":";
                var close = open == "[" ? "]" : "}";
                var text = node.ToJsonString();
                var at = text.LastIndexOf('}');
                return Encoding.UTF8.GetBytes(text[..at] + ",\"extension\":" + string.Concat(Enumerable.Repeat(open, depth)) + "1" + string.Concat(Enumerable.Repeat(close, depth)) + "}");
            }

            case 6:
            {
                // Invalid UTF-8 inside a string value.
                var bytes = Encoding.UTF8.GetBytes(node.ToJsonString()).ToList();
                byte[][] bad = [[0xff], [0xc3, 0x28], [0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]];
                var quotes = Enumerable.Range(0, bytes.Count).Where(i => bytes[i] == (byte)'"').ToList();
                var position = quotes.Count > 0 ? quotes[random.Next(quotes.Count)] + 1 : 0;
                bytes.InsertRange(position, bad[random.Next(bad.Length)]);
                return [.. bytes];
            }

            case 7:
            {
                // Truncated.
                var bytes = Encoding.UTF8.GetBytes(node.ToJsonString());
                return bytes[..random.Next(bytes.Length)];
            }

            case 8:
                node["resourceType"] = random.Next(4) switch { 0 => "Patient", 1 => "NotAType", 2 => "", _ => "Bundle" };
                break;
            case 9:
                node["id"] = RandomId(random);
                break;
            case 10:
            {
                // Escapes a database cannot hold, or that are odd but legal.
                var text = node.ToJsonString();
                var at = text.IndexOf(":\"", StringComparison.Ordinal);
                string[] escapes = ["\\u0000", "\\ud800", "\\udc00x", "\\u0007", "\\\"", "\\/", "\\u2028"];
                return Encoding.UTF8.GetBytes(at < 0 ? text : text.Insert(at + 2, escapes[random.Next(escapes.Length)]));
            }

            case 11:
            {
                var junk = new byte[random.Next(0, 300)];
                random.NextBytes(junk);
                return junk;
            }

            case 12:
                // Primitive extensions and extension arrays of the wrong shape.
                node["_" + (RandomProperty(node, random)?.Name ?? "id")] = random.Next(2) == 0 ? JsonValue.Create("x") : new JsonObject { ["extension"] = "nope" };
                node["extension"] = random.Next(2) == 0 ? new JsonArray(JsonValue.Create("x")) : new JsonArray(new JsonObject { ["url"] = 5 });
                break;
            case 13:
            {
                // Numbers out of range.
                var text = node.ToJsonString();
                string[] numbers = ["1e400", "-0", "1.0e-400", "123456789012345678901234567890", "0x10", "01", ".5", "NaN"];
                return Encoding.UTF8.GetBytes(text.Insert(text.LastIndexOf('}'), ",\"multipleBirthInteger\":" + numbers[random.Next(numbers.Length)]));
            }

            default:
                // Several at once.
                for (var i = 0; i < 3; i++)
                {
                    if (RandomProperty(node, random) is { } p)
                    {
                        if (random.Next(2) == 0)
                        {
                            p.Parent.Remove(p.Name);
                        }
                        else
                        {
                            p.Parent[p.Name] = JsonValue.Create(random.Next());
                        }
                    }
                }

                break;
        }

        return Encoding.UTF8.GetBytes(node.ToJsonString());
    }

    private static (JsonObject Parent, string Name)? RandomProperty(JsonObject root, Random random)
    {
        var all = new List<(JsonObject, string)>();
        void Walk(JsonNode? n)
        {
            switch (n)
            {
                case JsonObject o:
                    foreach (var (name, value) in o.ToList())
                    {
                        all.Add((o, name));
                        Walk(value);
                    }

                    break;
                case JsonArray a:
                    foreach (var item in a)
                    {
                        Walk(item);
                    }

                    break;
            }
        }

        Walk(root);
        return all.Count == 0 ? null : all[random.Next(all.Count)];
    }

    /// <summary>The state before a request: the store-wide part is the previous case's after-state when that case
    /// left the store as it was (refused, or a read), else it is read again.</summary>
    private async Task<string> StoreStateBeforeAsync(string type, string id)
    {
        await using var connection = await OpenAsync();
        return (_lastState ?? await StoreWideStateAsync(connection)) + await TargetStateAsync(connection, type, id);
    }

    /// <summary>The state after a request (kept for the next case's before-state).</summary>
    private async Task<string> StoreStateAfterAsync(string type, string id)
    {
        await using var connection = await OpenAsync();
        _lastState = await StoreWideStateAsync(connection);
        return _lastState + await TargetStateAsync(connection, type, id);
    }

    /// <summary>What any write changes: the store's sequence and clock, and every table's row count.</summary>
    private async Task<string> StoreWideStateAsync(System.Data.Common.DbConnection connection)
    {
        var text = new StringBuilder();
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT last_seq, last_ts FROM store_state";
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                text.Append(reader.GetInt64(0)).Append('/').Append(reader.GetInt64(1)).Append(';');
            }
        }

        _storeTables ??= await StoreTablesAsync(connection);
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT " + string.Join(", ", _storeTables.Select(t => $"(SELECT COUNT(*) FROM {t})"));
            await using var reader = await command.ExecuteReaderAsync();
            await reader.ReadAsync();
            for (var i = 0; i < _storeTables.Count; i++)
            {
                text.Append(_storeTables[i]).Append('=').Append(reader.GetInt64(i)).Append(';');
            }
        }

        return text.ToString();
    }

    /// <summary>The target's latest stored version and a hash of its bytes.</summary>
    private static async Task<string> TargetStateAsync(System.Data.Common.DbConnection connection, string type, string id)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT version, json FROM resources WHERE res_type = @t AND res_id = @i ORDER BY version DESC LIMIT 1";
        var t = command.CreateParameter();
        t.ParameterName = "@t";
        t.Value = type;
        var i = command.CreateParameter();
        i.ParameterName = "@i";
        i.Value = id;
        command.Parameters.Add(t);
        command.Parameters.Add(i);
        await using var reader = await command.ExecuteReaderAsync();
        return await reader.ReadAsync()
            ? $"{type}/{id}:{reader.GetValue(0)}:" + Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(reader.GetValue(1) switch
            {
                byte[] b => b,
                var v => Encoding.UTF8.GetBytes(v.ToString()!),
            }))
            : $"{type}/{id}: none";
    }

    private List<string>? _storeTables;

    /// <summary>The resource store's tables (not the export jobs', Hangfire's or the migration bookkeeping).</summary>
    private async Task<List<string>> StoreTablesAsync(System.Data.Common.DbConnection connection)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = factory.IsPostgres
            ? "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            : "SELECT name FROM sqlite_master WHERE type = 'table'";
        var tables = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var name = reader.GetString(0);
            if (!name.StartsWith("export_", StringComparison.Ordinal) && !name.StartsWith("sqlite_", StringComparison.Ordinal) && name is not "schema_version" and not "store_state")
            {
                tables.Add(name);
            }
        }

        Assert.Contains("resources", tables);
        return tables;
    }

    private async Task<System.Data.Common.DbConnection> OpenAsync()
    {
        System.Data.Common.DbConnection connection = factory.IsPostgres
            ? new Npgsql.NpgsqlConnection(factory.Services.GetRequiredService<Microsoft.Extensions.Configuration.IConfiguration>()["ConnectionStrings:helios-db"])
            : new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(factory.DataDirectory, "helios.db")};Mode=ReadOnly;Pooling=True");
        await connection.OpenAsync();
        return connection;
    }

    /// <summary>A file of a finished export, for Range probes (local store: served by the Api; S3: a presigned URL).</summary>
    private static async Task<string> ExportedFileUrlAsync(HttpClient client)
    {
        var exports = new ExportClient(client, null);
        var status = await exports.KickoffAsync("/$export?_type=Patient");
        var manifest = await exports.WaitForManifestAsync(status);
        return manifest.GetProperty("output")[0].GetProperty("url").GetString()!;
    }
}

public sealed class RestInputFuzzTests(RestFuzzFactory factory) : RestInputFuzzContract<RestFuzzFactory>(factory);

public sealed class PostgresRestInputFuzzTests(PostgresRestFuzzFactory factory) : RestInputFuzzContract<PostgresRestFuzzFactory>(factory);
