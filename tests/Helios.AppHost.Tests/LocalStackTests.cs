using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Helios.Testing;

namespace Helios.AppHost.Tests;

/// <summary>
/// The composed stack in the local mode (no container runtime): PostgreSQL, the S3 store and the authorization server
/// as local processes, two workers and the Api, started by the real AppHost. A bulk client gets a token with a
/// private_key_jwt assertion, writes data, runs a Group export and downloads every file.
/// </summary>
public sealed class LocalStackTests
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromMinutes(5);

    [Fact]
    public async Task LocalStack_RunsAGroupExportEndToEnd_WithASmartToken()
    {
        var dataDirectory = Path.Combine(Path.GetTempPath(), "helios-apphost-local-" + Guid.NewGuid().ToString("N")[..8]);
        using var cts = new CancellationTokenSource(s_timeout);
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Helios_AppHost>(
        [
            "--Helios:Infrastructure=local", $"--Helios:DataDirectory={dataDirectory}", "--Parameters:helios-db-password=local-stack-test",
            "--Helios:SeedPatients=4",
            "--DcpPublisher:ContainerRuntimeInitializationTimeout=00:00:00",
        ], cts.Token);
        await using var app = await builder.BuildAsync(cts.Token).WaitAsync(s_timeout, cts.Token);
        try
        {
            await app.StartAsync(cts.Token).WaitAsync(s_timeout, cts.Token);
            await app.ResourceNotifications.WaitForResourceHealthyAsync("helios-api", cts.Token).WaitAsync(s_timeout, cts.Token);

            using var http = new HttpClient();
            var token = await GetDevTokenAsync(http, app.GetEndpoint("helios-auth", "http"), Path.Combine(dataDirectory, "local", "auth"), cts.Token);
            using var api = app.CreateHttpClient("helios-api");
            Assert.Equal(HttpStatusCode.Unauthorized, (await api.GetAsync("/Patient", cts.Token)).StatusCode);
            api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);

            var tag = Guid.NewGuid().ToString("N")[..8];
            async Task PutAsync(string path, string json)
            {
                var response = await api.PutAsync(path, new StringContent(json, Encoding.UTF8, "application/fhir+json"), cts.Token);
                Assert.True(response.IsSuccessStatusCode, $"PUT {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cts.Token)}");
            }

            foreach (var p in new[] { "a", "b" })
            {
                await PutAsync($"/Patient/{p}-{tag}", $$"""{"resourceType":"Patient","id":"{{p}}-{{tag}}"}""");
                await PutAsync($"/Observation/{p}-obs-{tag}", $$$"""{"resourceType":"Observation","id":"{{{p}}}-obs-{{{tag}}}","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/{{{p}}}-{{{tag}}}"}}""");
            }

            await PutAsync($"/Group/g-{tag}", $$$"""{"resourceType":"Group","id":"g-{{{tag}}}","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/a-{{{tag}}}"}}]}""");

            async Task<Dictionary<string, List<string>>> ExportAsync(string path)
            {
                var kickoff = new HttpRequestMessage(HttpMethod.Get, path);
                kickoff.Headers.TryAddWithoutValidation("Prefer", "respond-async");
                var accepted = await api.SendAsync(kickoff, cts.Token);
                Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
                var status = accepted.Content.Headers.ContentLocation!;
                JsonElement manifest;
                while (true)
                {
                    await Task.Delay(TimeSpan.FromSeconds(1.1), cts.Token);
                    var poll = await api.GetAsync(status, cts.Token);
                    if (poll.StatusCode == HttpStatusCode.OK)
                    {
                        manifest = JsonDocument.Parse(await poll.Content.ReadAsStringAsync(cts.Token)).RootElement.Clone();
                        break;
                    }

                    Assert.True(poll.StatusCode == HttpStatusCode.Accepted, $"status {(int)poll.StatusCode}: {await poll.Content.ReadAsStringAsync(cts.Token)}");
                }

                var ids = new Dictionary<string, List<string>>();
                foreach (var file in manifest.GetProperty("output").EnumerateArray())
                {
                    // Through the Api's file route, which sends the client on to a presigned URL of the S3 store.
                    var text = await api.GetStringAsync(file.GetProperty("url").GetString(), cts.Token);
                    foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                    {
                        var resource = JsonDocument.Parse(line).RootElement;
                        var type = resource.GetProperty("resourceType").GetString()!;
                        (ids.TryGetValue(type, out var list) ? list : ids[type] = []).Add(resource.GetProperty("id").GetString()!);
                    }
                }

                return ids;
            }

            var ids = await ExportAsync($"/Group/g-{tag}/$export");
            Assert.Equal([$"a-{tag}"], ids["Patient"]);
            Assert.Equal([$"a-obs-{tag}"], ids["Observation"]);

            // The sample data of the first start: the seeded Group exports at once, with its patients' records.
            await app.ResourceNotifications.WaitForResourceAsync("helios-seed", KnownResourceStates.Finished, cts.Token).WaitAsync(s_timeout, cts.Token);
            var sample = await ExportAsync("/Group/helios-sample/$export");
            Assert.Equal(4, sample["Patient"].Count);
            Assert.True(sample.GetValueOrDefault("Observation")?.Count > 0, "the seeded patients' Observations are exported");
            await app.StopAsync(cts.Token);
        }
        finally
        {
            try
            {
                Directory.Delete(dataDirectory, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // best effort: PostgreSQL's files belong to its OS user
            }
        }
    }

    /// <summary>A token for the development client the authorization server made on first start (its private key is
    /// under the data directory): a private_key_jwt assertion to the token endpoint, as a bulk client does.</summary>
    private static async Task<string> GetDevTokenAsync(HttpClient http, Uri issuer, string keyDirectory, CancellationToken cancellationToken)
    {
        using var rsa = RSA.Create();
        rsa.ImportFromPem(await File.ReadAllTextAsync(Path.Combine(keyDirectory, "helios-dev.private.pem"), cancellationToken));
        var kid = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(keyDirectory, "helios-dev.jwks.json"), cancellationToken))
            .RootElement.GetProperty("keys")[0].GetProperty("kid").GetString();
        var discovery = JsonDocument.Parse(await http.GetStringAsync(new Uri(issuer, ".well-known/openid-configuration"), cancellationToken)).RootElement;
        var tokenEndpoint = discovery.GetProperty("token_endpoint").GetString()!;
        var client = new OidcClient("helios-dev", [], rsa, kid);
        var response = await http.PostAsync(tokenEndpoint, new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["scope"] = "system/*.cruds",
            ["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ["client_assertion"] = client.CreateAssertion("helios-dev", tokenEndpoint, TimeSpan.FromMinutes(4), Guid.NewGuid().ToString("N")),
        }), cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        Assert.True(response.IsSuccessStatusCode, $"token: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("access_token").GetString()!;
    }
}
