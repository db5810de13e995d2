using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Helios.Testing;

/// <summary>
/// A real SMART Backend Services authorization server for tests: the repository's oidc-provider
/// (<c>Helios.AppHost/auth/oidc-provider</c>, installed from its lock file on first use) on a free port, with the
/// given clients registered by their public keys. Tokens are obtained the way a bulk client does: a signed
/// <c>private_key_jwt</c> assertion and the client_credentials grant.
/// </summary>
public sealed class OidcServer : IAsyncDisposable
{
    private static readonly HttpClient s_http = new();
    private readonly Process _process;
    private readonly string _directory;

    private OidcServer(string issuer, Process process, string directory)
    {
        Issuer = issuer;
        _process = process;
        _directory = directory;
    }

    public string Issuer { get; }

    public string TokenEndpoint => Issuer + "/token";

    /// <summary>A resource indicator whose tokens are for another audience (Helios must refuse them).</summary>
    public const string OtherAudienceResource = "urn:test:other-audience";

    /// <summary>A resource indicator whose tokens are for Helios's audience but live three seconds.</summary>
    public const string ShortLivedResource = "urn:test:short-lived";

    public static async Task<OidcServer> StartAsync(IReadOnlyList<OidcClient> clients, string audience = "helios", int accessTokenTtlSeconds = 300)
    {
        ArgumentNullException.ThrowIfNull(clients);
        var folder = Path.Combine(TestTools.RepositoryRoot(), "Helios.AppHost", "auth", "oidc-provider");
        await TestTools.EnsureNpmPackagesAsync(folder, Path.Combine("oidc-provider", "package.json"));
        var directory = Path.Combine(Path.GetTempPath(), "helios-oidc-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(directory);
        var port = TestTools.FreePort();
        var issuer = $"http://127.0.0.1:{port}";
        var config = new JsonObject
        {
            ["issuer"] = issuer,
            ["audience"] = audience,
            ["accessTokenTtlSeconds"] = accessTokenTtlSeconds,
            ["ownerPid"] = Environment.ProcessId,
            ["resources"] = new JsonArray(
                new JsonObject { ["indicator"] = OtherAudienceResource, ["audience"] = "some-other-api" },
                new JsonObject { ["indicator"] = ShortLivedResource, ["audience"] = audience, ["ttl"] = 3 }),
            ["clients"] = new JsonArray([.. clients.Select(c => (JsonNode)new JsonObject
            {
                ["client_id"] = c.ClientId,
                ["jwks"] = new JsonObject { ["keys"] = new JsonArray(c.PublicJwk()) },
                ["scopes"] = new JsonArray([.. c.AllowedScopes.Select(s => JsonValue.Create(s))]),
            })]),
        };
        var configPath = Path.Combine(directory, "config.json");
        await File.WriteAllTextAsync(configPath, config.ToJsonString());

        var psi = new ProcessStartInfo("node") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = folder };
        psi.ArgumentList.Add(Path.Combine(folder, "server.mjs"));
        psi.ArgumentList.Add(configPath);
        var process = Process.Start(psi) ?? throw new InvalidOperationException("Could not start node for the authorization server.");
        var log = TextWriter.Synchronized(new StreamWriter(Path.Combine(directory, "server.log")) { AutoFlush = true });
        process.OutputDataReceived += (_, e) => log.WriteLine(e.Data);
        process.ErrorDataReceived += (_, e) => log.WriteLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        TestTools.RecordPid(process.Id);
        await TestTools.WaitForPortAsync(port, process, TimeSpan.FromSeconds(60), "oidc-provider");
        return new OidcServer(issuer, process, directory);
    }

    /// <summary>The token endpoint's answer to a client_credentials request with an assertion signed by
    /// <see cref="OidcClient.Key"/> (or <paramref name="signWith"/>); the assertion's claims can be spoiled for
    /// negative tests.</summary>
    public async Task<TokenResponse> RequestTokenAsync(
        OidcClient client, string scope, OidcClient? signWith = null, TimeSpan? lifetime = null, string? jti = null, string? audience = null, string? resource = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        var assertion = (signWith ?? client).CreateAssertion(client.ClientId, audience ?? TokenEndpoint, lifetime ?? TimeSpan.FromMinutes(4), jti ?? RandomNumberGenerator.GetHexString(64, lowercase: true));
        var form = new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["scope"] = scope,
            ["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ["client_assertion"] = assertion,
        };
        if (resource is not null)
        {
            form["resource"] = resource;
        }

        return await SendTokenRequestAsync(form);
    }

    public async Task<TokenResponse> SendTokenRequestAsync(IReadOnlyDictionary<string, string> form)
    {
        using var response = await s_http.PostAsync(TokenEndpoint, new FormUrlEncodedContent(form));
        var body = await response.Content.ReadAsStringAsync();
        return new TokenResponse((int)response.StatusCode, body);
    }

    /// <summary>An access token for the client with these scopes (fails the test when refused).</summary>
    public async Task<string> GetAccessTokenAsync(OidcClient client, string scope, string? resource = null)
    {
        var response = await RequestTokenAsync(client, scope, resource: resource);
        if (response.Status != 200)
        {
            throw new InvalidOperationException($"The authorization server refused a token to {client.ClientId} for '{scope}': {response.Status} {response.Body}");
        }

        return response.Json.GetProperty("access_token").GetString()!;
    }

    public ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(5000);
        }

        _process.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }

        return ValueTask.CompletedTask;
    }
}

/// <summary>A token endpoint answer.</summary>
public sealed record TokenResponse(int Status, string Body)
{
    public JsonElement Json => JsonDocument.Parse(Body).RootElement.Clone();
}

/// <summary>A registered backend-services client: its id, the scopes it may be granted, and its signing key
/// (RS384 with an RSA key, ES384 with a P-384 key).</summary>
public sealed class OidcClient(string clientId, IReadOnlyList<string> allowedScopes, AsymmetricAlgorithm key, string? keyId = null)
{
    public string ClientId { get; } = clientId;

    public IReadOnlyList<string> AllowedScopes { get; } = allowedScopes;

    public AsymmetricAlgorithm Key { get; } = key;

    public string KeyId { get; } = keyId ?? "kid-" + Guid.NewGuid().ToString("N")[..12];

    public static OidcClient Rsa(string clientId, params string[] allowedScopes) => new(clientId, allowedScopes, RSA.Create(2048));

    public static OidcClient EcP384(string clientId, params string[] allowedScopes) => new(clientId, allowedScopes, ECDsa.Create(ECCurve.NamedCurves.nistP384));

    public string Algorithm => Key is RSA ? "RS384" : "ES384";

    public JsonObject PublicJwk()
    {
        switch (Key)
        {
            case RSA rsa:
                var p = rsa.ExportParameters(false);
                return new JsonObject { ["kty"] = "RSA", ["kid"] = KeyId, ["alg"] = "RS384", ["use"] = "sig", ["n"] = B64(p.Modulus!), ["e"] = B64(p.Exponent!) };
            case ECDsa ec:
                var q = ec.ExportParameters(false).Q;
                return new JsonObject { ["kty"] = "EC", ["kid"] = KeyId, ["alg"] = "ES384", ["use"] = "sig", ["crv"] = "P-384", ["x"] = B64(q.X!), ["y"] = B64(q.Y!) };
            default:
                throw new NotSupportedException(Key.GetType().Name);
        }
    }

    /// <summary>A SMART Backend Services client assertion: header {alg, kid, typ: JWT}, claims {iss = sub = client id,
    /// aud = token endpoint, exp, jti}.</summary>
    public string CreateAssertion(string clientId, string audience, TimeSpan lifetime, string jti)
    {
        var header = new JsonObject { ["alg"] = Algorithm, ["kid"] = KeyId, ["typ"] = "JWT" };
        var claims = new JsonObject
        {
            ["iss"] = clientId,
            ["sub"] = clientId,
            ["aud"] = audience,
            ["exp"] = DateTimeOffset.UtcNow.Add(lifetime).ToUnixTimeSeconds(),
            ["jti"] = jti,
        };
        var input = B64(Encoding.UTF8.GetBytes(header.ToJsonString())) + "." + B64(Encoding.UTF8.GetBytes(claims.ToJsonString()));
        var data = Encoding.ASCII.GetBytes(input);
        var signature = Key switch
        {
            RSA rsa => rsa.SignData(data, HashAlgorithmName.SHA384, RSASignaturePadding.Pkcs1),
            ECDsa ec => ec.SignData(data, HashAlgorithmName.SHA384, DSASignatureFormat.IeeeP1363FixedFieldConcatenation),
            _ => throw new NotSupportedException(Key.GetType().Name),
        };
        return input + "." + B64(signature);
    }

    private static string B64(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
