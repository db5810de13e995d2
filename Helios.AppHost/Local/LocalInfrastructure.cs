using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;

namespace Helios.AppHost.Local;

/// <summary>
/// The infrastructure roles as local processes (the <c>local</c> mode): PostgreSQL from the installed server
/// binaries, the S3 store (s3rver) and the authorization server (oidc-provider) from the repository's npm folders,
/// installed from their lock files on first use. Data lives under the AppHost's data directory and survives restarts.
/// </summary>
internal static class LocalInfrastructure
{
    public static IResourceBuilder<LocalPostgresResource> AddLocalPostgres(this IDistributedApplicationBuilder builder, string name, IResourceBuilder<ParameterResource> password, string dataDirectory)
    {
        var resource = new LocalPostgresResource(name, Path.Combine(builder.AppHostDirectory, "local"), password.Resource);
        var healthKey = name + "-ready";
        builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(healthKey, _ => new PostgresReady(resource), null, null));
        return builder.AddResource(resource)
            .WithArgs("pg-run.sh", Path.Combine(dataDirectory, "postgres"))
            .WithEndpoint(name: LocalPostgresResource.EndpointName, scheme: "tcp", env: "PG_PORT", isProxied: false)
            .WithEnvironment("PG_PASSWORD", password)
            .WithHealthCheck(healthKey);
    }

    public static IResourceBuilder<ExecutableResource> AddLocalS3(this IDistributedApplicationBuilder builder, string name, string dataDirectory)
    {
        var folder = Path.Combine(builder.AppHostDirectory, "local", "s3rver");
        EnsureNpmPackages(folder, "s3rver");
        var directory = Path.Combine(dataDirectory, "s3");
        Directory.CreateDirectory(directory);
        return builder.AddExecutable(name, "node", folder, "server.js", directory)
            .WithHttpEndpoint(env: "PORT", isProxied: false)
            // s3rver encrypts list continuation tokens with DES, which Node's OpenSSL 3 offers only through the legacy provider.
            .WithEnvironment("NODE_OPTIONS", "--openssl-legacy-provider");
    }

    /// <summary>The SMART Backend Services authorization server with a development client whose key pair is made on
    /// first run under the data directory (<c>auth/helios-dev.private.pem</c>, never committed).</summary>
    /// <param name="clients">More clients, each registered by its JWKS URL (e.g. the Inferno test kit's).</param>
    public static IResourceBuilder<ExecutableResource> AddLocalAuthServer(
        this IDistributedApplicationBuilder builder, string name, string dataDirectory, string audience, string devClientId, IReadOnlyList<(string ClientId, string JwksUri, string[] Scopes)> clients)
    {
        var folder = Path.Combine(builder.AppHostDirectory, "auth", "oidc-provider");
        EnsureNpmPackages(folder, "oidc-provider");
        var directory = Path.Combine(dataDirectory, "auth");
        Directory.CreateDirectory(directory);
        var config = new JsonObject
        {
            ["issuer"] = "http://127.0.0.1:4400",
            ["audience"] = audience,
            ["accessTokenTtlSeconds"] = 300,
            ["clients"] = new JsonArray([.. clients.Select(c => (JsonNode)new JsonObject
            {
                ["client_id"] = c.ClientId,
                ["jwks_uri"] = c.JwksUri,
                ["scopes"] = new JsonArray([.. c.Scopes.Select(s => (JsonNode)s)]),
            })]),
            ["devClient"] = new JsonObject
            {
                ["client_id"] = devClientId,
                ["directory"] = directory,
                ["scopes"] = new JsonArray("system/*.cruds", "system/*.*"),
            },
        };
        var configPath = Path.Combine(directory, "config.json");
        File.WriteAllText(configPath, config.ToJsonString());
        var auth = builder.AddExecutable(name, "node", folder, "server.mjs", configPath)
            .WithHttpEndpoint(env: "PORT", isProxied: false);
        return auth.WithEnvironment("HELIOS_AUTH_ISSUER", auth.GetEndpoint("http"))
            .WithHttpHealthCheck("/.well-known/openid-configuration");
    }

    /// <summary><c>npm ci</c> in <paramref name="folder"/> unless an earlier one finished there. Several AppHosts may
    /// start at once on a fresh clone (tests do), so the install runs under a lock file and leaves a marker when done.</summary>
    private static void EnsureNpmPackages(string folder, string package)
    {
        var marker = Path.Combine(folder, "node_modules", ".helios-installed");
        if (File.Exists(marker) && File.Exists(Path.Combine(folder, "node_modules", package, "package.json")))
        {
            return;
        }

        using var gate = AcquireLock(Path.Combine(folder, ".npm-install.lock"), TimeSpan.FromMinutes(5));
        if (File.Exists(marker) && File.Exists(Path.Combine(folder, "node_modules", package, "package.json")))
        {
            return;
        }

        var psi = new ProcessStartInfo("npm") { WorkingDirectory = folder, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { "ci", "--no-audit", "--no-fund" })
        {
            psi.ArgumentList.Add(argument);
        }

        using var npm = Process.Start(psi) ?? throw new InvalidOperationException("npm could not be started: install Node.js (20 or later) for the local mode.");
        var output = npm.StandardError.ReadToEndAsync();
        npm.StandardOutput.ReadToEnd();
        npm.WaitForExit();
        if (npm.ExitCode != 0)
        {
            throw new InvalidOperationException($"npm ci in {folder} failed: {output.Result}");
        }

        File.WriteAllText(marker, DateTimeOffset.UtcNow.ToString("O"));
    }

    /// <summary>An exclusive lock on <paramref name="path"/> across processes (released on dispose).</summary>
    private static FileStream AcquireLock(string path, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(250);
            }
        }
    }

    /// <summary>Healthy once the server accepts a connection with the configured password.</summary>
    private sealed class PostgresReady(LocalPostgresResource resource) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                var connectionString = await resource.ConnectionStringExpression.GetValueAsync(cancellationToken);
                await using var connection = new NpgsqlConnection(connectionString + ";Timeout=3");
                await connection.OpenAsync(cancellationToken);
                return HealthCheckResult.Healthy();
            }
            catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or TimeoutException)
            {
                return HealthCheckResult.Unhealthy("PostgreSQL does not accept connections yet.", ex);
            }
        }
    }
}
