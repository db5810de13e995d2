using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using static Helios.Api.Tests.FhirJsonHttp;

namespace Helios.Api.Tests;

/// <summary>SMART Backend Services protection against a real oidc-provider issuing signed tokens: client
/// authentication at the token endpoint, token validation, scopes per interaction and per exported type, and
/// exports private to the client that started them.</summary>
public sealed class SmartAuthTests(AuthEmbeddedFactory factory) : IClassFixture<AuthEmbeddedFactory>, IAsyncLifetime
{
    private OidcServer Server => factory.Authorization;

    public Task InitializeAsync() => ExportSeed.EnsureAsync(factory);

    public Task DisposeAsync() => Task.CompletedTask;

    private HttpClient Client(string? token)
    {
        var client = factory.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
        client.DefaultRequestHeaders.Authorization = token is null ? null : new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    private async Task<HttpClient> ClientWithAsync(OidcClient client, string scope) => Client(await Server.GetAccessTokenAsync(client, scope));

    [Fact]
    public async Task SmartConfiguration_IsDerivedFromTheAuthorizationServer()
    {
        var response = await Client(null).GetAsync("/.well-known/smart-configuration");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("application/json", response.Content.Headers.ContentType!.ToString(), StringComparison.Ordinal);
        var json = await response.JsonAsync();
        Assert.Equal(Server.Issuer, json.GetProperty("issuer").GetString());
        Assert.Equal(Server.TokenEndpoint, json.GetProperty("token_endpoint").GetString());
        Assert.Equal(Server.Issuer + "/jwks", json.GetProperty("jwks_uri").GetString());
        Assert.Contains("client_credentials", Strings(json, "grant_types_supported"));
        Assert.Contains("private_key_jwt", Strings(json, "token_endpoint_auth_methods_supported"));
        Assert.Superset(new HashSet<string> { "RS384", "ES384" }, Strings(json, "token_endpoint_auth_signing_alg_values_supported").ToHashSet());
        Assert.Contains("system/*.rs", Strings(json, "scopes_supported"));
        Assert.Superset(new HashSet<string> { "client-confidential-asymmetric", "permission-v1", "permission-v2" }, Strings(json, "capabilities").ToHashSet());

        var metadata = await (await Client(null).GetAsync("/metadata")).JsonAsync();
        var security = metadata.GetProperty("rest")[0].GetProperty("security");
        Assert.Equal("SMART-on-FHIR", security.GetProperty("service")[0].GetProperty("coding")[0].GetProperty("code").GetString());
        Assert.Contains(Server.TokenEndpoint, security.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task HangfireDashboard_NeedsAToken_AndIsReadOnly()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, (await Client(null).GetAsync("/hangfire")).StatusCode);
        var client = await ClientWithAsync(AuthSetup.Full, "system/*.rs");
        var page = await client.GetAsync("/hangfire");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("Helios export jobs", html, StringComparison.Ordinal);
        // Read-only: the pages offer no commands, and a command posted anyway is refused.
        Assert.DoesNotContain("data-ajax=", html, StringComparison.Ordinal);
        var command = await client.PostAsync("/hangfire/jobs/enqueued/delete", new FormUrlEncodedContent(new Dictionary<string, string> { ["jobs[]"] = "1" }));
        Assert.False(command.IsSuccessStatusCode, $"a read-only dashboard ran a command: {(int)command.StatusCode}");
    }

    [Fact]
    public async Task TokenEndpoint_AuthenticatesTheClientByItsKey()
    {
        // RS384 and ES384 assertions of registered keys get tokens (v2 and v1 scopes).
        var token = await Server.RequestTokenAsync(AuthSetup.Full, "system/*.rs");
        Assert.Equal(200, token.Status);
        Assert.Equal("bearer", token.Json.GetProperty("token_type").GetString()!.ToLowerInvariant());
        Assert.Equal(JsonValueKind.Number, token.Json.GetProperty("expires_in").ValueKind);
        Assert.Equal("system/*.rs", token.Json.GetProperty("scope").GetString());
        Assert.Equal(200, (await Server.RequestTokenAsync(AuthSetup.Ec, "system/*.read")).Status);

        // A wrong key, a replayed assertion, an expired one and one that lives too long get invalid_client.
        Assert.Equal("invalid_client", Error(await Server.RequestTokenAsync(AuthSetup.Full, "system/*.rs", signWith: AuthSetup.Other), 401));
        var jti = Guid.NewGuid().ToString("N");
        Assert.Equal(200, (await Server.RequestTokenAsync(AuthSetup.Full, "system/*.rs", jti: jti)).Status);
        Assert.Equal("invalid_client", Error(await Server.RequestTokenAsync(AuthSetup.Full, "system/*.rs", jti: jti), 401));
        Assert.Equal("invalid_client", Error(await Server.RequestTokenAsync(AuthSetup.Full, "system/*.rs", lifetime: TimeSpan.FromMinutes(-2)), 401));
        Assert.Equal("invalid_client", Error(await Server.RequestTokenAsync(AuthSetup.Full, "system/*.rs", lifetime: TimeSpan.FromMinutes(30)), 401));
        Assert.Equal("invalid_client", Error(await Server.RequestTokenAsync(AuthSetup.Full, "system/*.rs", audience: "https://elsewhere.example/token"), 401));

        // Scopes beyond the client's registration are not granted.
        Assert.Equal("invalid_scope", Error(await Server.RequestTokenAsync(AuthSetup.Limited, "system/Observation.rs"), 400));
        var narrowed = await Server.RequestTokenAsync(AuthSetup.Limited, "system/Patient.rs system/Observation.rs");
        Assert.Equal("system/Patient.rs", narrowed.Json.GetProperty("scope").GetString());
    }

    [Fact]
    public async Task Requests_WithoutAValidToken_Get401WithAChallengeAndAnOutcome()
    {
        var otherAudience = await Server.GetAccessTokenAsync(AuthSetup.Full, "system/*.rs", OidcServer.OtherAudienceResource);
        await using var otherServer = await OidcServer.StartAsync(AuthSetup.Clients);
        var otherIssuer = await otherServer.GetAccessTokenAsync(AuthSetup.Full, "system/*.rs");

        var cases = new (string Name, string? Header)[]
        {
            ("no token", null),
            ("empty bearer", "Bearer "),
            ("garbage", "Bearer not-a-jwt"),
            ("another audience", "Bearer " + otherAudience),
            ("another issuer", "Bearer " + otherIssuer),
        };
        foreach (var (name, header) in cases)
        {
            await AssertUnauthorizedAsync(name, header);
        }

        // A token that lives three seconds works, then (once they are over) no longer does.
        var shortLived = await Server.GetAccessTokenAsync(AuthSetup.Full, "system/*.rs", OidcServer.ShortLivedResource);
        Assert.Equal(HttpStatusCode.OK, (await Client(shortLived).GetAsync("/Patient?_count=1")).StatusCode);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while ((await Client(shortLived).GetAsync("/Patient?_count=1")).StatusCode == HttpStatusCode.OK)
        {
            Assert.True(DateTime.UtcNow < deadline, "an expired token was still accepted");
            await Task.Delay(200);
        }

        await AssertUnauthorizedAsync("expired", "Bearer " + shortLived);

        // Discovery and metadata stay open.
        Assert.Equal(HttpStatusCode.OK, (await Client(null).GetAsync("/metadata")).StatusCode);
    }

    private async Task AssertUnauthorizedAsync(string name, string? header)
    {
        var client = factory.CreateClient();
        client.DefaultRequestHeaders.Authorization = null;
        var request = new HttpRequestMessage(HttpMethod.Get, "/Patient?_count=1");
        if (header is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", header);
        }

        var response = await client.SendAsync(request);
        Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{name}: {(int)response.StatusCode}");
        var challenge = response.Headers.WwwAuthenticate.ToString();
        Assert.StartsWith("Bearer", challenge, StringComparison.Ordinal);
        Assert.Contains("error=", challenge, StringComparison.Ordinal);
        Assert.NotEmpty(await response.OutcomeTextAsync());
    }

    [Theory]
    [InlineData("system/Patient.rs", "GET", "/Patient?_count=1", 200)]
    [InlineData("system/Patient.r", "GET", "/Patient?_count=1", 403)]
    [InlineData("system/Patient.r", "GET", "/Patient/auth-p1", 200)]
    [InlineData("system/Patient.s", "GET", "/Patient/auth-p1", 403)]
    [InlineData("system/Patient.s", "GET", "/Patient/auth-p1/_history", 403)]
    [InlineData("system/Patient.rs", "GET", "/Observation?_count=1", 403)]
    [InlineData("system/Patient.rs", "GET", "/Patient?_count=1&_revinclude=Observation:subject", 403)]
    [InlineData("system/Patient.rs", "POST", "/Patient", 403)]
    [InlineData("system/Patient.c", "POST", "/Patient", 201)]
    [InlineData("system/Patient.cud", "PUT", "/Patient/auth-p2", 201)]
    [InlineData("system/Patient.c", "PUT", "/Patient/auth-p3", 403)]
    [InlineData("system/Patient.cu", "DELETE", "/Patient/auth-p1", 403)]
    [InlineData("system/Patient.d", "DELETE", "/Patient/auth-gone", 204)]
    [InlineData("system/*.read", "GET", "/_history?_count=1", 200)]
    [InlineData("system/Patient.read", "GET", "/_history?_count=1", 403)]
    [InlineData("system/*.write", "POST", "/Observation", 201)]
    [InlineData("system/*.write", "GET", "/Observation?_count=1", 403)]
    [InlineData("system/Observation.rs?category=laboratory", "GET", "/Observation?_count=1", 403)]
    public async Task EveryInteraction_ChecksItsPermission(string scope, string method, string url, int expected)
    {
        var client = await ClientWithAsync(AuthSetup.Full, scope);
        var body = url.StartsWith("/Observation", StringComparison.Ordinal)
            ? """{"resourceType":"Observation","status":"final","code":{"text":"auth"}}"""
            : $$"""{"resourceType":"Patient"{{(method == "PUT" ? ",\"id\":\"" + url[(url.LastIndexOf('/') + 1)..] + "\"" : "")}},"active":true}""";
        var request = Request(new HttpMethod(method), url, method is "POST" or "PUT" ? body : null);
        if (method is "POST" or "PUT")
        {
            request.Content = Body(body);
        }

        await Client(await Server.GetAccessTokenAsync(AuthSetup.Full, "system/*.cruds")).PutAsync("/Patient/auth-p1", Body("""{"resourceType":"Patient","id":"auth-p1","active":true}"""));
        var response = await client.SendAsync(request);
        Assert.True((int)response.StatusCode == expected, $"{scope}: {method} {url} gave {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        if (expected == 403)
        {
            var outcome = await response.OutcomeTextAsync();
            Assert.Contains("scope", outcome, StringComparison.Ordinal);
            if (scope.Contains('?', StringComparison.Ordinal))
            {
                Assert.Contains("constraint", outcome, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public async Task Transaction_NeedsEveryEntrysPermission_AndWritesNothingOtherwise()
    {
        var client = await ClientWithAsync(AuthSetup.Full, "system/Patient.cruds");
        const string bundle = """
            {"resourceType":"Bundle","type":"transaction","entry":[
              {"request":{"method":"PUT","url":"Patient/tx-auth-p"},"resource":{"resourceType":"Patient","id":"tx-auth-p","active":true}},
              {"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"}}}]}
            """;
        var response = await client.PostAsync("/", Body(bundle));
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("Entry 1", await response.OutcomeTextAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/Patient/tx-auth-p")).StatusCode);

        // In a batch, each entry stands alone.
        var batch = await (await client.PostAsync("/", Body(bundle.Replace("\"transaction\"", "\"batch\"", StringComparison.Ordinal)))).JsonAsync();
        Assert.Equal(["201 Created", "403 Forbidden"], batch.GetProperty("entry").EnumerateArray().Select(e => e.GetProperty("response").GetProperty("status").GetString()));
    }

    [Fact]
    public async Task Export_NeedsReadOnEveryRequestedType_OrIsNarrowedToTheGrantedOnes()
    {
        var patientsOnly = new ExportClient(await ClientWithAsync(AuthSetup.Limited, "system/Patient.rs"));
        var refused = await patientsOnly.SendKickoffAsync("/$export?_type=Patient,Observation");
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Contains("Observation", await refused.OutcomeTextAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Accepted, (await patientsOnly.SendKickoffAsync("/$export?_type=Patient")).StatusCode);

        // Without _type: only the granted type, and the manifest's error file says why.
        var manifest = await patientsOnly.WaitForManifestAsync(await patientsOnly.KickoffAsync("/$export"));
        Assert.All(manifest.GetProperty("output").EnumerateArray(), o => Assert.Equal("Patient", o.GetProperty("type").GetString()));
        var errors = await patientsOnly.DownloadErrorsAsync(manifest);
        Assert.Contains(errors, e => e.Contains("grants read on Patient only", StringComparison.Ordinal));

        // A Group export needs read on Group too.
        Assert.Equal(HttpStatusCode.Forbidden, (await patientsOnly.SendKickoffAsync("/Group/anything/$export?_type=Patient")).StatusCode);
    }

    [Fact]
    public async Task AnotherClient_CannotSeePollCancelOrDownloadAnExport()
    {
        var owner = new ExportClient(await ClientWithAsync(AuthSetup.Full, "system/*.rs"));
        var stranger = await ClientWithAsync(AuthSetup.Other, "system/*.cruds");
        var statusUrl = await owner.KickoffAsync("/$export?_type=Patient");
        var manifest = await owner.WaitForManifestAsync(statusUrl);
        var fileUrl = manifest.GetProperty("output")[0].GetProperty("url").GetString()!;

        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync(statusUrl)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync(fileUrl)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.DeleteAsync(statusUrl)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await owner.PollAsync(statusUrl)).StatusCode);

        // The file route never leaves the job's own files, however the name is encoded.
        var jobId = statusUrl[(statusUrl.LastIndexOf('/') + 1)..];
        foreach (var name in new[] { "..%2F..%2Fhelios.db", "..%252F..%252Fhelios.db", "%2E%2E%2Fhelios.db", "..\\..\\helios.db", "%2Fetc%2Fpasswd" })
        {
            var response = await owner.Api.GetAsync($"/$export-file/{jobId}/{name}");
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{name}: {(int)response.StatusCode}");
        }
    }

    private static IEnumerable<string> Strings(JsonElement json, string name) =>
        json.GetProperty(name).EnumerateArray().Select(e => e.GetString()!);

    private static string Error(TokenResponse response, int status)
    {
        Assert.True(response.Status == status, $"expected {status}, got {response.Status}: {response.Body}");
        return response.Json.GetProperty("error").GetString()!;
    }
}
