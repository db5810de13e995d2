using System.IO.Compression;
using System.Net;
using System.Text.Json;
using Helios.Storage;
using Helios.Storage.Synthetic;
using Hl7.Fhir.Model;
using Microsoft.Extensions.DependencyInjection;
using Task = System.Threading.Tasks.Task;

namespace Helios.Api.Tests;

/// <summary>Export settings that make small data sets use many partitions and parts, and a fast supervisor.</summary>
internal static class ExportTestSettings
{
    public static void Apply(HeliosApiFactory factory, bool slow)
    {
        foreach (var (key, value) in Values(slow))
        {
            factory.Settings[key] = value;
        }
    }

    /// <summary>The export settings of the tests (small partitions and parts, short leases; slow: a delay per batch).</summary>
    public static Dictionary<string, string> Values(bool slow)
    {
        var settings = new Dictionary<string, string>();
        settings["Helios:Export:PartitionRows"] = "40";
        settings["Helios:Export:ReadBatchRows"] = "15";
        settings["Helios:Export:MaxPartBytes"] = "16000";
        settings["Helios:Export:SupervisorInterval"] = "00:00:00.200";
        settings["Helios:Export:HeartbeatInterval"] = "00:00:00.200";
        settings["Helios:Export:LeaseDuration"] = "00:00:03";
        settings["Helios:Export:RequeueAfter"] = "00:00:05";
        settings["Helios:Export:WorkerCount"] = "3";
        // The test client polls every 100 ms (PollThrottleTests covers the 429).
        settings["Helios:Export:PollThrottleFraction"] = "0";
        if (slow)
        {
            settings["Helios:Export:DelayPerBatch"] = "00:00:00.150";
            settings["Helios:Export:MaxActivePerClient"] = "3";
        }

        return settings;
    }
}

public sealed class EmbeddedExportFactory : HeliosApiFactory
{
    public EmbeddedExportFactory() => ExportTestSettings.Apply(this, slow: false);
}

public sealed class PostgresS3ExportFactory : HeliosApiFactory
{
    public PostgresS3ExportFactory()
        : base(postgres: true) => ExportTestSettings.Apply(this, slow: false);
}

public sealed class DirectUrlsPostgresS3ExportFactory : HeliosApiFactory
{
    public DirectUrlsPostgresS3ExportFactory()
        : base(postgres: true)
    {
        ExportTestSettings.Apply(this, slow: false);
        Settings["Helios:Export:DirectDownloadUrls"] = "true";
    }
}

public sealed class SlowEmbeddedExportFactory : HeliosApiFactory
{
    public SlowEmbeddedExportFactory() => ExportTestSettings.Apply(this, slow: true);
}

public sealed class SlowPostgresS3ExportFactory : HeliosApiFactory
{
    public SlowPostgresS3ExportFactory()
        : base(postgres: true) => ExportTestSettings.Apply(this, slow: true);
}

/// <summary>Seeds a factory's store once with the synthetic generator's data.</summary>
internal static class ExportSeed
{
    public const int Patients = 12;

    public static async Task EnsureAsync(HeliosApiFactory factory)
    {
        var store = factory.Services.GetRequiredService<IResourceStore>();
        if ((await store.CountByTypeAsync(CancellationToken.None)).ContainsKey("Organization"))
        {
            return;
        }

        var writes = new SyntheticDataGenerator(7).Generate(Patients).Select(r => ResourceWrite.Update(r)).ToList();
        await store.WriteAsync(writes, CancellationToken.None);
    }

    public static async Task<Resource> WriteAsync(HeliosApiFactory factory, Resource resource)
    {
        await factory.Services.GetRequiredService<IResourceStore>().WriteAsync([ResourceWrite.Update(resource)], CancellationToken.None);
        return resource;
    }
}

/// <summary>The $export lifecycle, written once and run on both topologies.</summary>
public abstract partial class ExportContract<TFactory>(TFactory factory) : IClassFixture<TFactory>, IAsyncLifetime
    where TFactory : HeliosApiFactory
{
    private readonly ExportClient _client = new(
        factory.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { AllowAutoRedirect = false }), ExportDiagnostics.For(factory));

    protected TFactory Factory => factory;

    private IResourceStore Store => factory.Services.GetRequiredService<IResourceStore>();

    public Task InitializeAsync() => ExportSeed.EnsureAsync(factory);

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task SystemExport_ExportsEveryCurrentResourceExactlyOnce()
    {
        var expected = await Store.CountByTypeAsync(CancellationToken.None);
        var statusUrl = await _client.KickoffAsync("/$export");
        var manifest = await _client.WaitForManifestAsync(statusUrl);

        foreach (var key in new[] { "transactionTime", "request", "requiresAccessToken", "output", "error" })
        {
            Assert.True(manifest.TryGetProperty(key, out _), $"manifest lacks {key}");
        }

        Assert.Equal("http://localhost/$export", manifest.GetProperty("request").GetString());
        Assert.True(DateTimeOffset.TryParse(manifest.GetProperty("transactionTime").GetString(), out _));
        // Files are fetched from the Api, which admits them as it admits $export itself.
        Assert.Equal(JsonValueKind.True, manifest.GetProperty("requiresAccessToken").ValueKind);
        Assert.Empty(manifest.GetProperty("error").EnumerateArray());

        var lines = await _client.DownloadOutputAsync(manifest);
        var ids = ExportClient.IdsByType(lines);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), ids.Keys.Order(StringComparer.Ordinal));
        foreach (var (type, count) in expected)
        {
            Assert.True(count == ids[type].Count, $"{type}: expected {count}, exported {ids[type].Count}");
        }

        // Small partitions and parts: the export really was split.
        Assert.True(manifest.GetProperty("output").GetArrayLength() > expected.Count, "expected several files for some types");
    }

    [Fact]
    public async Task PatientExport_ExportsThePatientCompartmentsOnly()
    {
        var expected = await Store.CountByTypeAsync(CancellationToken.None);
        var manifest = await _client.WaitForManifestAsync(await _client.KickoffAsync("/Patient/$export"));
        var ids = ExportClient.IdsByType(await _client.DownloadOutputAsync(manifest));

        Assert.DoesNotContain("Organization", ids.Keys);
        Assert.DoesNotContain("Practitioner", ids.Keys);
        foreach (var type in new[] { "Patient", "Encounter", "Observation", "Condition", "MedicationRequest", "Claim" })
        {
            Assert.True(expected[type] == ids[type].Count, $"{type}: expected {expected[type]}, exported {ids.GetValueOrDefault(type)?.Count}");
        }
    }

    [Fact]
    public async Task GroupExport_FlattensNestedGroups_SkipsInactiveAndExpiredMembers()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        string P(string n) => $"g{tag}-{n}";
        foreach (var n in new[] { "a", "b", "c", "d", "e" })
        {
            await ExportSeed.WriteAsync(factory, new Patient { Id = P(n), Name = [new HumanName { Family = "Member" + n }] });
            await ExportSeed.WriteAsync(factory, new Observation
            {
                Id = P(n) + "-obs",
                Status = ObservationStatus.Final,
                Code = new CodeableConcept("http://loinc.org", "8302-2"),
                Subject = new ResourceReference("Patient/" + P(n)),
            });
        }

        await ExportSeed.WriteAsync(factory, new Group
        {
            Id = P("outer"), Type = Group.GroupType.Person, Actual = true,
            Member =
            [
                new Group.MemberComponent { Entity = new ResourceReference("Patient/" + P("a")) },
                new Group.MemberComponent { Entity = new ResourceReference("Patient/" + P("b")), Inactive = true },
                new Group.MemberComponent { Entity = new ResourceReference("Patient/" + P("c")), Period = new Period { Start = "1990-01-01", End = "2000-01-01" } },
                new Group.MemberComponent { Entity = new ResourceReference("Group/" + P("inner")) },
            ],
        });
        await ExportSeed.WriteAsync(factory, new Group
        {
            Id = P("inner"), Type = Group.GroupType.Person, Actual = true,
            Member =
            [
                new Group.MemberComponent { Entity = new ResourceReference("http://localhost/Patient/" + P("d")) },
                new Group.MemberComponent { Entity = new ResourceReference("Group/" + P("outer")) }, // a cycle
            ],
        });

        var manifest = await _client.WaitForManifestAsync(await _client.KickoffAsync($"/Group/{P("outer")}/$export?_type=Patient,Observation"));
        var ids = ExportClient.IdsByType(await _client.DownloadOutputAsync(manifest));
        Assert.Equal([P("a"), P("d")], ids["Patient"].Order(StringComparer.Ordinal));
        Assert.Equal([P("a") + "-obs", P("d") + "-obs"], ids["Observation"].Order(StringComparer.Ordinal));
        Assert.Equal(["Observation", "Patient"], ids.Keys.Order(StringComparer.Ordinal));

        var unknown = await _client.SendKickoffAsync("/Group/does-not-exist/$export");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("Group/does-not-exist", await unknown.OutcomeTextAsync());
    }

    [Fact]
    public async Task Since_ExportsOnlyLaterChanges()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        await ExportSeed.WriteAsync(factory, new Patient { Id = $"old-{tag}" });
        await Task.Delay(20);
        var since = DateTimeOffset.UtcNow;
        await Task.Delay(20);
        await ExportSeed.WriteAsync(factory, new Patient { Id = $"new-{tag}" });

        // An unencoded '+' in the offset arrives as a space; it must still be read as an instant.
        var text = since.ToOffset(TimeSpan.FromHours(2)).ToString("yyyy-MM-dd'T'HH:mm:ss.fffzzz", System.Globalization.CultureInfo.InvariantCulture);
        var manifest = await _client.WaitForManifestAsync(await _client.KickoffAsync($"/$export?_type=Patient&_since={text}"));
        var ids = ExportClient.IdsByType(await _client.DownloadOutputAsync(manifest));
        Assert.Equal([$"new-{tag}"], ids["Patient"]);
    }

    [Fact]
    public async Task Until_ExportsTheDataAsItWasThen_WithTheBoundaryIncluded()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        var store = factory.Services.GetRequiredService<IResourceStore>();
        async Task<DateTimeOffset> WriteAsync(ResourceWrite write) =>
            (await store.WriteAsync([write], CancellationToken.None))[0].Resource!.LastUpdated;

        await WriteAsync(ResourceWrite.Update(new Patient { Id = $"u1-{tag}", Gender = AdministrativeGender.Female }));
        var boundary = await WriteAsync(ResourceWrite.Update(new Patient { Id = $"u2-{tag}" }));
        // After the boundary: u1 changes, u2 is deleted, u3 is new.
        await WriteAsync(ResourceWrite.Update(new Patient { Id = $"u1-{tag}", Gender = AdministrativeGender.Male }));
        await WriteAsync(ResourceWrite.Delete("Patient", $"u2-{tag}"));
        await WriteAsync(ResourceWrite.Update(new Patient { Id = $"u3-{tag}" }));

        var until = Uri.EscapeDataString(boundary.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", System.Globalization.CultureInfo.InvariantCulture));
        var manifest = await _client.WaitForManifestAsync(await _client.KickoffAsync($"/$export?_type=Patient&_until={until}"));
        var patients = (await _client.DownloadOutputAsync(manifest))["Patient"]
            .Where(p => p.GetProperty("id").GetString()!.EndsWith(tag, StringComparison.Ordinal))
            .ToDictionary(p => p.GetProperty("id").GetString()!, p => p);
        Assert.Equal([$"u1-{tag}", $"u2-{tag}"], patients.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("female", patients[$"u1-{tag}"].GetProperty("gender").GetString());
        Assert.Equal("1", patients[$"u1-{tag}"].GetProperty("meta").GetProperty("versionId").GetString());

        // _since and _until together: only what changed in between; _until before _since is refused.
        var since = Uri.EscapeDataString(boundary.AddTicks(-10).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", System.Globalization.CultureInfo.InvariantCulture));
        var window = await _client.WaitForManifestAsync(await _client.KickoffAsync($"/$export?_type=Patient&_since={since}&_until={until}"));
        Assert.Equal([$"u2-{tag}"], ExportClient.IdsByType(await _client.DownloadOutputAsync(window))["Patient"].Where(id => id.EndsWith(tag, StringComparison.Ordinal)));
        var backwards = await _client.SendKickoffAsync($"/$export?_since={until}&_until=2020-01-01T00:00:00Z");
        Assert.Equal(HttpStatusCode.BadRequest, backwards.StatusCode);
        Assert.Contains("_until", await backwards.OutcomeTextAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Since_ListsTheDeletionsOfTheWindow_OnEveryLevel()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        var store = factory.Services.GetRequiredService<IResourceStore>();
        var patient = $"del-p-{tag}";
        var observation = new Observation { Id = $"del-o-{tag}", Status = ObservationStatus.Final, Code = new CodeableConcept("http://loinc.org", "8867-4"), Subject = new ResourceReference("Patient/" + patient) };
        var early = new Observation { Id = $"del-early-{tag}", Status = ObservationStatus.Final, Code = new CodeableConcept("http://loinc.org", "8867-4"), Subject = new ResourceReference("Patient/" + patient) };
        await store.WriteAsync([ResourceWrite.Update(new Patient { Id = patient }), ResourceWrite.Update(observation), ResourceWrite.Update(early),
            ResourceWrite.Update(new Group { Id = $"del-g-{tag}", Type = Group.GroupType.Person, Actual = true, Member = [new() { Entity = new ResourceReference("Patient/" + patient) }] })], CancellationToken.None);
        // Deleted before the window: not listed.
        var beforeWindow = await store.WriteAsync([ResourceWrite.Delete("Observation", early.Id)], CancellationToken.None);
        var since = Uri.EscapeDataString(beforeWindow[0].Resource!.LastUpdated.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", System.Globalization.CultureInfo.InvariantCulture));
        await store.WriteAsync([ResourceWrite.Delete("Observation", observation.Id)], CancellationToken.None);

        foreach (var path in new[] { "/$export", "/Patient/$export", $"/Group/del-g-{tag}/$export" })
        {
            var manifest = await _client.WaitForManifestAsync(await _client.KickoffAsync($"{path}?_type=Observation&_since={since}"));
            var deleted = new List<string>();
            foreach (var file in manifest.GetProperty("deleted").EnumerateArray())
            {
                Assert.Equal("Bundle", file.GetProperty("type").GetString());
                var text = await (await _client.GetFileAsync(file.GetProperty("url").GetString()!)).Content.ReadAsStringAsync();
                var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
                Assert.Equal(file.GetProperty("count").GetInt64(), lines.Length);
                foreach (var line in lines)
                {
                    using var bundle = JsonDocument.Parse(line);
                    Assert.Equal("Bundle", bundle.RootElement.GetProperty("resourceType").GetString());
                    Assert.Equal("transaction", bundle.RootElement.GetProperty("type").GetString());
                    var request = bundle.RootElement.GetProperty("entry")[0].GetProperty("request");
                    Assert.Equal("DELETE", request.GetProperty("method").GetString());
                    deleted.Add(request.GetProperty("url").GetString()!);
                }
            }

            Assert.True(deleted.Contains($"Observation/{observation.Id}"), $"{path}: deleted lists {string.Join(", ", deleted)}");
            Assert.DoesNotContain($"Observation/{early.Id}", deleted);
            Assert.DoesNotContain(ExportClient.IdsByType(await _client.DownloadOutputAsync(manifest)).GetValueOrDefault("Observation") ?? [], id => id == observation.Id);
        }
    }

    [Fact]
    public async Task PatientParameter_RestrictsToThosePatients_AndReportsTheOnesLeftOut()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        var store = factory.Services.GetRequiredService<IResourceStore>();
        Observation ObservationOf(string patient) => new()
        {
            Id = $"obs-{patient}", Status = ObservationStatus.Final, Code = new CodeableConcept("http://loinc.org", "8867-4"), Subject = new ResourceReference("Patient/" + patient),
        };
        string[] patients = [$"pp-a-{tag}", $"pp-b-{tag}", $"pp-c-{tag}"];
        await store.WriteAsync(
        [
            .. patients.Select(p => ResourceWrite.Update(new Patient { Id = p })),
            .. patients.Select(p => ResourceWrite.Update(ObservationOf(p))),
            ResourceWrite.Update(new Group { Id = $"pp-g-{tag}", Type = Group.GroupType.Person, Actual = true, Member = [new() { Entity = new ResourceReference("Patient/" + patients[0]) }, new() { Entity = new ResourceReference("Patient/" + patients[1]) }] }),
        ], CancellationToken.None);

        string Body(params string[] references) =>
            "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"_type\",\"valueString\":\"Patient,Observation\"}" +
            string.Concat(references.Select(r => $",{{\"name\":\"patient\",\"valueReference\":{{\"reference\":\"{r}\"}}}}")) + "]}";

        // Patient level: a and c, and one that does not exist.
        var atPatient = await _client.SendKickoffAsync("/Patient/$export", HttpMethod.Post, Body($"Patient/{patients[0]}", $"Patient/{patients[2]}", $"Patient/nobody-{tag}"));
        Assert.Equal(HttpStatusCode.Accepted, atPatient.StatusCode);
        var manifest = await _client.WaitForManifestAsync(atPatient.Content.Headers.ContentLocation!.AbsoluteUri);
        var ids = ExportClient.IdsByType(await _client.DownloadOutputAsync(manifest));
        Assert.Equal([patients[0], patients[2]], ids["Patient"].Order(StringComparer.Ordinal));
        Assert.Equal([$"obs-{patients[0]}", $"obs-{patients[2]}"], ids["Observation"].Order(StringComparer.Ordinal));
        Assert.Contains(await _client.DownloadErrorsAsync(manifest), e => e.Contains($"Patient/nobody-{tag}", StringComparison.Ordinal));

        // Group level: b is a member, c is not (reported, never silently dropped).
        var atGroup = await _client.SendKickoffAsync($"/Group/pp-g-{tag}/$export", HttpMethod.Post, Body($"Patient/{patients[1]}", $"Patient/{patients[2]}"));
        Assert.Equal(HttpStatusCode.Accepted, atGroup.StatusCode);
        manifest = await _client.WaitForManifestAsync(atGroup.Content.Headers.ContentLocation!.AbsoluteUri);
        ids = ExportClient.IdsByType(await _client.DownloadOutputAsync(manifest));
        Assert.Equal([patients[1]], ids["Patient"]);
        Assert.Equal([$"obs-{patients[1]}"], ids["Observation"]);
        Assert.Contains(await _client.DownloadErrorsAsync(manifest), e => e.Contains($"Patient/{patients[2]} is not an active member", StringComparison.Ordinal));

        // System level has no patient parameter.
        Assert.Equal(HttpStatusCode.BadRequest, (await _client.SendKickoffAsync("/$export", HttpMethod.Post, Body($"Patient/{patients[0]}"))).StatusCode);
    }

    [Fact]
    public async Task Kickoff_ValidatesHeadersAndParameters()
    {
        var noPrefer = await _client.SendKickoffAsync("/$export", null, null, ("Prefer", "handling=strict"));
        Assert.Equal(HttpStatusCode.BadRequest, noPrefer.StatusCode);
        Assert.Contains("respond-async", await noPrefer.OutcomeTextAsync());

        var format = await _client.SendKickoffAsync("/$export?_outputFormat=text/csv");
        Assert.Equal(HttpStatusCode.BadRequest, format.StatusCode);
        Assert.Contains("_outputFormat", await format.OutcomeTextAsync());

        var type = await _client.SendKickoffAsync("/$export?_type=Patient,NotAType");
        Assert.Equal(HttpStatusCode.BadRequest, type.StatusCode);
        Assert.Contains("NotAType", await type.OutcomeTextAsync());

        var outsideCompartment = await _client.SendKickoffAsync("/Patient/$export?_type=Organization");
        Assert.Equal(HttpStatusCode.BadRequest, outsideCompartment.StatusCode);

        var since = await _client.SendKickoffAsync("/$export?_since=2024-01-01");
        Assert.Equal(HttpStatusCode.BadRequest, since.StatusCode);
        Assert.Contains("instant", await since.OutcomeTextAsync());

        var unsupported = await _client.SendKickoffAsync("/$export?_elements=Patient.name.given");
        Assert.Equal(HttpStatusCode.BadRequest, unsupported.StatusCode);
        Assert.Contains("_elements", await unsupported.OutcomeTextAsync());

        // The three format spellings the IG requires, each accepted (and cancelled, as Inferno does).
        foreach (var accepted in new[] { "application%2Ffhir%2Bndjson", "application%2Fndjson", "ndjson", "application/fhir+ndjson" })
        {
            var statusUrl = await _client.KickoffAsync($"/$export?_type=Organization&_outputFormat={accepted}");
            var cancel = await _client.Api.DeleteAsync(statusUrl);
            Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        }

        // POST with a Parameters body; repeats of _type are one comma-separated list.
        var post = await _client.SendKickoffAsync("/$export", HttpMethod.Post, """
            {"resourceType":"Parameters","parameter":[
              {"name":"_type","valueString":"Organization"},{"name":"_type","valueString":"Practitioner"},
              {"name":"_outputFormat","valueString":"application/fhir+ndjson"}]}
            """);
        Assert.Equal(HttpStatusCode.Accepted, post.StatusCode);
        var postManifest = await _client.WaitForManifestAsync(post.Content.Headers.ContentLocation!.AbsoluteUri);
        Assert.Equal("http://localhost/$export", postManifest.GetProperty("request").GetString());
        Assert.Equal(["Organization", "Practitioner"], ExportClient.IdsByType(await _client.DownloadOutputAsync(postManifest)).Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task PostKickoff_WithoutParameters_IsAccepted()
    {
        // No body, a Parameters resource without parameter (0..*), and an empty parameter array (a widely used bulk
        // client sends that on every POST kick-off): all mean "no parameters".
        foreach (var body in new string?[] { null, "{\"resourceType\":\"Parameters\"}", "{\"resourceType\":\"Parameters\",\"parameter\":[]}" })
        {
            var response = await _client.SendKickoffAsync("/$export", HttpMethod.Post, body);
            Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"{body ?? "(no body)"}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            Assert.Equal(HttpStatusCode.Accepted, (await _client.Api.DeleteAsync(response.Content.Headers.ContentLocation!.AbsoluteUri)).StatusCode);
        }

        // A Parameters resource that is wrong is still refused.
        var wrong = await _client.SendKickoffAsync("/$export", HttpMethod.Post, "{\"resourceType\":\"Parameters\",\"parameter\":{}}");
        Assert.Equal(HttpStatusCode.BadRequest, wrong.StatusCode);
    }

    [Fact]
    public async Task Lenient_IgnoresUnsupportedParameters_AndSaysSoInTheManifest()
    {
        var statusUrl = await _client.KickoffAsync("/$export?_type=Organization&_elements=Patient.nope&_typeFilter=Patient%3Factive%3Dtrue", ("Prefer", "respond-async, handling=lenient"));
        var manifest = await _client.WaitForManifestAsync(statusUrl);
        var error = Assert.Single(manifest.GetProperty("error").EnumerateArray());
        Assert.Equal("OperationOutcome", error.GetProperty("type").GetString());
        var response = await _client.GetFileAsync(error.GetProperty("url").GetString()!);
        var outcome = JsonDocument.Parse((await response.Content.ReadAsStringAsync()).TrimEnd('\n')).RootElement;
        Assert.Equal("OperationOutcome", outcome.GetProperty("resourceType").GetString());
        var diagnostics = outcome.GetProperty("issue").EnumerateArray().Select(i => i.GetProperty("diagnostics").GetString()).ToList();
        Assert.Contains(diagnostics, d => d!.Contains("_elements", StringComparison.Ordinal));
        Assert.Contains(diagnostics, d => d!.Contains("_typeFilter", StringComparison.Ordinal));
        Assert.Equal(["Organization"], ExportClient.IdsByType(await _client.DownloadOutputAsync(manifest)).Keys);
    }

    [Fact]
    public async Task UnknownJob_Is404WithOperationOutcome()
    {
        var status = await _client.PollAsync("http://localhost/$export-status/0123456789abcdef");
        Assert.Equal(HttpStatusCode.NotFound, status.StatusCode);
        Assert.Contains("no export", await status.OutcomeTextAsync());
        var cancel = await _client.Api.DeleteAsync("/$export-status/0123456789abcdef");
        Assert.Equal(HttpStatusCode.NotFound, cancel.StatusCode);
        var file = await _client.Api.GetAsync("/$export-file/0123456789abcdef/Patient-0000-000-1.ndjson");
        Assert.Equal(HttpStatusCode.NotFound, file.StatusCode);
    }

    [Fact]
    public async Task Metadata_AdvertisesTheThreeExportOperations()
    {
        var statement = await (await _client.Api.GetAsync("/metadata")).JsonAsync();
        Assert.Contains(statement.GetProperty("instantiates").EnumerateArray(), i => i.GetString() == "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data");
        var rest = statement.GetProperty("rest")[0];
        Assert.Contains(rest.GetProperty("operation").EnumerateArray(), o =>
            o.GetProperty("name").GetString() == "export" && o.GetProperty("definition").GetString() == "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export");
        foreach (var (type, definition) in new[] { ("Patient", "patient-export"), ("Group", "group-export") })
        {
            var resource = rest.GetProperty("resource").EnumerateArray().Single(r => r.GetProperty("type").GetString() == type);
            Assert.Contains(resource.GetProperty("operation").EnumerateArray(), o =>
                o.GetProperty("name").GetString() == "export" && o.GetProperty("definition").GetString() == $"http://hl7.org/fhir/uv/bulkdata/OperationDefinition/{definition}");
        }
    }
}

public sealed class EmbeddedExportTests(EmbeddedExportFactory factory) : ExportContract<EmbeddedExportFactory>(factory)
{
    [Fact]
    public async Task Download_SupportsGzipAndRanges()
    {
        var client = new ExportClient(Factory.CreateClient(), ExportDiagnostics.For(Factory));
        var manifest = await client.WaitForManifestAsync(await client.KickoffAsync("/$export?_type=Observation"));
        var url = manifest.GetProperty("output")[0].GetProperty("url").GetString()!;
        var plain = await (await client.GetFileAsync(url)).Content.ReadAsByteArrayAsync();

        var gzipped = await client.GetFileAsync(url, ("Accept-Encoding", "gzip"));
        Assert.Equal("gzip", gzipped.Content.Headers.ContentEncoding.Single());
        Assert.NotNull(gzipped.Content.Headers.Expires);
        await using (var unzip = new GZipStream(await gzipped.Content.ReadAsStreamAsync(), CompressionMode.Decompress))
        using (var copy = new MemoryStream())
        {
            await unzip.CopyToAsync(copy);
            Assert.Equal(plain, copy.ToArray());
        }

        var ranged = await client.GetFileAsync(url, ("Range", "bytes=10-19"));
        Assert.Equal(HttpStatusCode.PartialContent, ranged.StatusCode);
        Assert.Equal(plain[10..20], await ranged.Content.ReadAsByteArrayAsync());

        // Past the end: 416, the length in Content-Range, and an OperationOutcome that says why.
        var beyond = await client.GetFileAsync(url, ("Range", $"bytes={plain.Length}-"));
        Assert.Equal(HttpStatusCode.RequestedRangeNotSatisfiable, beyond.StatusCode);
        Assert.Equal($"bytes */{plain.Length}", beyond.Content.Headers.ContentRange?.ToString() ?? string.Join(",", beyond.Headers.GetValues("Content-Range")));
        Assert.Contains("selects no byte", await beyond.OutcomeTextAsync(), StringComparison.Ordinal);
    }
}

/// <summary>Every export stage emits a span, all in the kick-off's trace; the stages and the refusals are counted.</summary>
public sealed class ExportTelemetryTests(EmbeddedExportFactory factory) : IClassFixture<EmbeddedExportFactory>
{
    [Fact]
    public async Task Stages_EmitSpans_InTheKickoffsTrace()
    {
        await ExportSeed.EnsureAsync(factory);
        var spans = new System.Collections.Concurrent.ConcurrentBag<System.Diagnostics.Activity>();
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = source => source.Name == ExportTelemetry.Name,
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Add,
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);

        var client = new ExportClient(factory.CreateClient(), ExportDiagnostics.For(factory));
        var statusUrl = await client.KickoffAsync("/$export?_type=Patient");
        var jobId = statusUrl[(statusUrl.LastIndexOf('/') + 1)..];
        await client.WaitForManifestAsync(statusUrl);

        var mine = spans.Where(s => Equals(s.GetTagItem(ExportTelemetry.JobIdTag), jobId)).ToList();
        var kickoff = Assert.Single(mine, s => s.DisplayName == "helios.export.kickoff");
        var plan = Assert.Single(mine, s => s.DisplayName == "helios.export.plan");
        var complete = Assert.Single(mine, s => s.DisplayName == "helios.export.complete");
        var partitions = mine.Where(s => s.DisplayName == "helios.export.partition").ToList();
        Assert.NotEmpty(partitions);
        // The stages ran in Hangfire jobs, after the kick-off's request ended, and still are its children.
        Assert.All(partitions.Append(plan).Append(complete), s =>
        {
            Assert.Equal(kickoff.TraceId, s.TraceId);
            Assert.Equal(kickoff.SpanId, s.ParentSpanId);
        });
        Assert.Contains(spans, s => s.DisplayName == "helios.export.part" && s.TraceId == kickoff.TraceId && partitions.Any(p => p.SpanId == s.ParentSpanId));
    }

    [Fact]
    public async Task Metrics_CountStagesAndRefusals_AndTheGaugesReadTheStore()
    {
        await ExportSeed.EnsureAsync(factory);
        var measured = new System.Collections.Concurrent.ConcurrentQueue<(string Name, long Value, string? Reason)>();
        using var meters = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == ExportTelemetry.Name)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        meters.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            string? reason = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "reason")
                {
                    reason = tag.Value as string;
                }
            }

            measured.Enqueue((instrument.Name, value, reason));
        });
        meters.Start();

        var client = new ExportClient(factory.CreateClient(), ExportDiagnostics.For(factory));
        var refused = await client.SendKickoffAsync("/$export?_type=NoSuchType");
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains(measured, m => m is { Name: "helios.export.kickoffs.refused", Value: 1, Reason: "invalid" });

        var statusUrl = await client.KickoffAsync("/$export?_type=Patient");
        await factory.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().OfType<Helios.Export.Engine.ExportActivityReporter>().Single().ReportAsync(CancellationToken.None);
        meters.RecordObservableInstruments();
        Assert.Contains(measured, m => m is { Name: "helios.export.jobs.active", Value: >= 1 });

        await client.WaitForManifestAsync(statusUrl);
        Assert.Contains(measured, m => m is { Name: "helios.export.partitions.queued", Value: >= 1 });
        Assert.Contains(measured, m => m is { Name: "helios.export.partitions.running", Value: 1 });
        Assert.Contains(measured, m => m is { Name: "helios.export.partitions.running", Value: -1 });
        Assert.Contains(measured, m => m is { Name: "helios.export.resources", Value: > 0 });
    }
}

public sealed class PostgresS3ExportTests(PostgresS3ExportFactory factory) : ExportContract<PostgresS3ExportFactory>(factory)
{
    [Fact]
    public async Task Download_RedirectsToAPresignedUrl()
    {
        var client = new ExportClient(Factory.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { AllowAutoRedirect = false }), ExportDiagnostics.For(Factory));
        var manifest = await client.WaitForManifestAsync(await client.KickoffAsync("/$export?_type=Patient"));
        var url = manifest.GetProperty("output")[0].GetProperty("url").GetString()!;
        Assert.StartsWith("http://localhost/$export-file/", url, StringComparison.Ordinal);
        var response = await client.Api.GetAsync(url);
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Contains("X-Amz-Signature", response.Headers.Location!.Query, StringComparison.Ordinal);
    }
}

/// <summary>postgres-s3 configured to hand out presigned URLs in the manifest.</summary>
public sealed class DirectDownloadUrlTests(DirectUrlsPostgresS3ExportFactory factory) : IClassFixture<DirectUrlsPostgresS3ExportFactory>
{
    [Fact]
    public async Task Manifest_HoldsPresignedUrls_ThatNeedNoToken()
    {
        await ExportSeed.EnsureAsync(factory);
        var client = new ExportClient(factory.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { AllowAutoRedirect = false }), ExportDiagnostics.For(factory));
        var manifest = await client.WaitForManifestAsync(await client.KickoffAsync("/$export?_type=Patient,Observation"));

        Assert.Equal(JsonValueKind.False, manifest.GetProperty("requiresAccessToken").ValueKind);
        foreach (var item in manifest.GetProperty("output").EnumerateArray())
        {
            var url = item.GetProperty("url").GetString()!;
            Assert.DoesNotContain("/$export-file/", url, StringComparison.Ordinal);
            Assert.Contains("X-Amz-Signature", url, StringComparison.Ordinal);
        }

        var counts = await factory.Services.GetRequiredService<IResourceStore>().CountByTypeAsync(CancellationToken.None);
        var lines = await client.DownloadOutputAsync(manifest);
        Assert.Equal(counts["Patient"], lines["Patient"].Count);
        Assert.Equal(counts["Observation"], lines["Observation"].Count);
    }
}
