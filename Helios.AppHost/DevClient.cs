using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Helios.AppHost;

/// <summary>
/// The development client of the composed stack: a SMART Backend Services client that authenticates with a
/// private_key_jwt assertion (RS384). Its key pair is made on first start under the data directory and never
/// committed: <c>{id}.private.pem</c> (to sign assertions), <c>{id}.jwks.json</c> (registered with the local
/// authorization server) and <c>{id}.certificate.pem</c> (a self-signed certificate of the same key, registered with
/// Keycloak). The dashboard's "Get a development token" command signs an assertion with it.
/// </summary>
internal static class DevClient
{
    public static string PrivateKeyPath(string directory, string clientId) => Path.Combine(directory, clientId + ".private.pem");

    /// <summary>Makes the key pair, its JWKS and its certificate where they are missing; returns the certificate as
    /// base64 DER (Keycloak's <c>jwt.credential.certificate</c>).</summary>
    public static string EnsureKeys(string directory, string clientId)
    {
        Directory.CreateDirectory(directory);
        var privatePath = PrivateKeyPath(directory, clientId);
        var jwksPath = Path.Combine(directory, clientId + ".jwks.json");
        var certificatePath = Path.Combine(directory, clientId + ".certificate.pem");
        using var rsa = RSA.Create(2048);
        if (File.Exists(privatePath) && File.Exists(jwksPath))
        {
            rsa.ImportFromPem(File.ReadAllText(privatePath));
        }
        else
        {
            File.WriteAllText(privatePath, rsa.ExportPkcs8PrivateKeyPem());
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(privatePath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            var parameters = rsa.ExportParameters(false);
            var jwk = new JsonObject
            {
                ["kty"] = "RSA",
                ["n"] = Base64Url(parameters.Modulus!),
                ["e"] = Base64Url(parameters.Exponent!),
                ["kid"] = $"{clientId}-{Guid.NewGuid().ToString("N")[..8]}",
                ["alg"] = "RS384",
                ["use"] = "sig",
            };
            File.WriteAllText(jwksPath, new JsonObject { ["keys"] = new JsonArray(jwk) }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            File.Delete(certificatePath);
        }

        if (!File.Exists(certificatePath))
        {
            var request = new CertificateRequest($"CN={clientId}", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
            using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(10));
            File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        }

        return Convert.ToBase64String(X509Certificate2.CreateFromPem(File.ReadAllText(certificatePath)).RawData);
    }

    /// <summary>A client_credentials token for the client: discovery at <paramref name="authority"/>, then a
    /// private_key_jwt assertion to its token endpoint.</summary>
    public static async Task<string> RequestTokenAsync(HttpClient http, Uri authority, string directory, string clientId, string scope, CancellationToken cancellationToken)
    {
        var discovery = JsonDocument.Parse(await http.GetStringAsync(new Uri(authority.ToString().TrimEnd('/') + "/.well-known/openid-configuration"), cancellationToken)).RootElement;
        var tokenEndpoint = discovery.GetProperty("token_endpoint").GetString()!;
        var kid = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(directory, clientId + ".jwks.json"), cancellationToken))
            .RootElement.GetProperty("keys")[0].GetProperty("kid").GetString();
        using var rsa = RSA.Create();
        rsa.ImportFromPem(await File.ReadAllTextAsync(PrivateKeyPath(directory, clientId), cancellationToken));
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var header = Base64Url(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object?> { ["alg"] = "RS384", ["typ"] = "JWT", ["kid"] = kid }));
        var payload = Base64Url(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["iss"] = clientId,
            ["sub"] = clientId,
            ["aud"] = tokenEndpoint,
            ["iat"] = now,
            ["exp"] = now + 240,
            ["jti"] = Guid.NewGuid().ToString("N"),
        }));
        var signature = Base64Url(rsa.SignData(Encoding.ASCII.GetBytes(header + "." + payload), HashAlgorithmName.SHA384, RSASignaturePadding.Pkcs1));
        using var response = await http.PostAsync(tokenEndpoint, new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["scope"] = scope,
            ["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ["client_assertion"] = $"{header}.{payload}.{signature}",
        }), cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"The token endpoint {tokenEndpoint} answered {(int)response.StatusCode}: {body}");
        }

        return JsonDocument.Parse(body).RootElement.GetProperty("access_token").GetString()!;
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
