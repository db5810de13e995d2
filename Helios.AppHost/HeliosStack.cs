using Helios.AppHost.Containers;
using Helios.AppHost.Local;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Helios.AppHost;

/// <summary>What the Helios processes need from the infrastructure, whichever mode provides it.</summary>
internal sealed record StackInfrastructure(
    IResourceBuilder<IResourceWithConnectionString> Database,
    IResourceBuilder<IResourceWithEndpoints> Files,
    ReferenceExpression FilesUrl,
    IResourceBuilder<ParameterResource> FilesAccessKey,
    IResourceBuilder<ParameterResource> FilesSecretKey,
    IResourceBuilder<IResourceWithEndpoints> Auth,
    ReferenceExpression Authority,
    string DevClientDirectory,
    string DevClientId);

/// <summary>The postgres-s3 topology: the workers (they own migrations) and the Api over the infrastructure, each
/// waiting for what it needs, plus the first start's sample data and the development client's token command.</summary>
internal static class HeliosStack
{
    public const string Audience = "helios";
    public const string SampleGroup = "helios-sample";
    public const string DevTokenCommand = "dev-token";

    /// <summary>The CPU nice value of the worker processes (Helios.Worker reads it as Helios:Worker:Nice).</summary>
    public const string WorkerNiceSetting = "Helios:Worker:Nice";

    public static StackInfrastructure Local(IDistributedApplicationBuilder builder, string dataDirectory)
    {
        var dbPassword = DatabasePassword(builder);
        var s3AccessKey = builder.AddParameter("helios-files-access-key");
        var s3SecretKey = builder.AddParameter("helios-files-secret-key", secret: true);
        var db = builder.AddLocalPostgres("helios-db", dbPassword, dataDirectory);
        var files = builder.AddLocalS3("helios-files", dataDirectory);
        // A client registered by its JWKS URL, for the Inferno Bulk Data test kit (docs/inferno.md).
        var clients = new List<(string, string, string[])>();
        if (builder.Configuration["Helios:Inferno:JwksUri"] is { Length: > 0 } jwksUri)
        {
            clients.Add((builder.Configuration["Helios:Inferno:ClientId"] ?? "inferno", jwksUri, ["system/*.read", "system/*.rs"]));
        }

        var devClientId = DevClientId(builder);
        var keys = Path.Combine(dataDirectory, "auth");
        DevClient.EnsureKeys(keys, devClientId);
        var auth = builder.AddLocalAuthServer("helios-auth", dataDirectory, Audience, devClientId, clients);
        return new StackInfrastructure(db, files, ReferenceExpression.Create($"{files.GetEndpoint("http")}"), s3AccessKey, s3SecretKey,
            auth, ReferenceExpression.Create($"{auth.GetEndpoint("http")}"), keys, devClientId);
    }

    public static StackInfrastructure Containers(IDistributedApplicationBuilder builder, string dataDirectory)
    {
        var dbPassword = DatabasePassword(builder);
        var minioUser = builder.AddParameter("helios-minio-user", "helios");
        var minioPassword = builder.AddParameter("helios-minio-password", new GenerateParameterDefault { MinLength = 24, Special = false }, secret: true, persist: true);
        var keycloakAdmin = builder.AddParameter("helios-auth-admin-password", new GenerateParameterDefault { MinLength = 24, Special = false }, secret: true, persist: true);
        var db = builder.AddContainerPostgres("helios-db", dbPassword);
        var files = builder.AddMinio("helios-files", minioUser, minioPassword);
        var devClientId = DevClientId(builder);
        var keys = Path.Combine(dataDirectory, "auth");
        var certificate = DevClient.EnsureKeys(keys, devClientId);
        var auth = builder.AddKeycloak("helios-auth", keycloakAdmin, certificate,
            builder.Configuration["Helios:Inferno:JwksUri"], builder.Configuration["Helios:BackendJwksUri"]);
        return new StackInfrastructure(db, files, ReferenceExpression.Create($"{files.GetEndpoint("http")}"), minioUser, minioPassword,
            auth, ReferenceExpression.Create($"{auth.GetEndpoint("http")}/realms/{ContainerInfrastructure.Realm}"), keys, devClientId);
    }

    public static void AddComposed(IDistributedApplicationBuilder builder, StackInfrastructure infrastructure)
    {
        var (db, files, filesUrl, accessKey, secretKey, auth, authority, keys, devClientId) = infrastructure;
        var replicas = int.TryParse(builder.Configuration["Helios:WorkerReplicas"], out var n) && n > 0 ? n : 2;
        var apiReplicas = int.TryParse(builder.Configuration["Helios:ApiReplicas"], out var a) && a > 0 ? a : 1;

        // Export settings given to the AppHost (--Helios:Export:PartitionRows=...) go to the workers and the Api.
        var exportSettings = builder.Configuration.GetSection("Helios:Export").AsEnumerable(true)
            .Where(setting => setting.Value is not null).ToList();

        IResourceBuilder<ProjectResource> Configure(IResourceBuilder<ProjectResource> project) => exportSettings
            .Aggregate(project, (p, setting) => p.WithEnvironment("Helios__Export__" + setting.Key.Replace(":", "__", StringComparison.Ordinal), setting.Value))
            .WithEnvironment("Helios__Topology", "postgres-s3")
            .WithReference(db, "helios-db").WaitFor(db)
            .WithEnvironment("Helios__Export__S3__ServiceUrl", filesUrl)
            .WithEnvironment("Helios__Export__S3__AccessKey", accessKey)
            .WithEnvironment("Helios__Export__S3__SecretKey", secretKey)
            .WaitFor(files)
            .WithEnvironment("Helios__Auth__Authority", authority)
            .WithEnvironment("Helios__Auth__Audience", Audience)
            .WithEnvironment("Helios__Auth__AllowHttp", "true")
            .WaitFor(auth)
            .WithHttpHealthCheck("/health");

        // Every process of this graph shares one machine: export work yields the CPU to the Api's requests
        // (Helios:Worker:Nice given to the AppHost overrides it; 0 turns it off).
        var workerNice = builder.Configuration[WorkerNiceSetting] ?? "10";
        var worker = Configure(builder.AddProject<Projects.Helios_Worker>("helios-worker"))
            .WithEnvironment("Helios__Worker__Nice", workerNice)
            .WithReplicas(replicas);
        var api = Configure(builder.AddProject<Projects.Helios_Api>("helios-api"))
            .WithEnvironment("Helios__Export__RunWorkers", "false")
            .WithReplicas(apiReplicas)
            .WaitFor(worker);
        api.WithCommand(DevTokenCommand, "Get a development token",
            context => GetDevTokenAsync(api, authority, keys, devClientId, context.CancellationToken),
            new CommandOptions
            {
                Description = $"Signs a private_key_jwt assertion with the {devClientId} client's key and shows the access token, with curl commands for an export.",
                IconName = "Key",
                IsHighlighted = true,
                UpdateState = state => state.ResourceSnapshot.HealthStatus == HealthStatus.Healthy ? ResourceCommandState.Enabled : ResourceCommandState.Disabled,
            });

        // Sample data on first start (Helios:SeedPatients=0 turns it off): the generator's patients and a Group of
        // them, so an export works at once. The one-shot resource runs the Api's `seed` verb and ends.
        var seedPatients = int.TryParse(builder.Configuration["Helios:SeedPatients"], out var p) && p >= 0 ? p : 300;
        if (seedPatients > 0)
        {
            builder.AddProject<Projects.Helios_Api>("helios-seed", launchProfileName: null)
                .WithArgs("seed", "--patients", seedPatients.ToString(System.Globalization.CultureInfo.InvariantCulture), "--group-id", SampleGroup)
                .WithEnvironment("Helios__Topology", "postgres-s3")
                .WithReference(db, "helios-db").WaitFor(db)
                .WaitFor(worker);
            api.WithUrls(context => context.Urls.Add(new ResourceUrlAnnotation
            {
                Url = $"{context.GetEndpoint("http")?.Url}/Group/{SampleGroup}/$export",
                DisplayText = $"Group/{SampleGroup}/$export (seeded; get a token first)",
            }));
        }
    }

    /// <summary>The dashboard command's work: a token for the development client, shown with a curl walk-through.</summary>
    private static async Task<ExecuteCommandResult> GetDevTokenAsync(
        IResourceBuilder<ProjectResource> api, ReferenceExpression authority, string keys, string devClientId, CancellationToken cancellationToken)
    {
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            var issuer = await authority.GetValueAsync(cancellationToken) ?? throw new InvalidOperationException("The authorization server has no address yet.");
            var token = await DevClient.RequestTokenAsync(http, new Uri(issuer), keys, devClientId, "system/*.cruds", cancellationToken);
            var baseUrl = api.GetEndpoint("http").Url;
            var markdown = $"""
                Access token of `{devClientId}` (scope `system/*.cruds`, valid 5 minutes):

                ```
                {token}
                ```

                Export the seeded Group:

                ```bash
                TOKEN={token}
                curl -i -H "Authorization: Bearer $TOKEN" -H 'Prefer: respond-async' -H 'Accept: application/fhir+json' '{baseUrl}/Group/{SampleGroup}/$export'
                # poll the Content-Location URL until 200, then download each output url with the same header
                curl -s -H "Authorization: Bearer $TOKEN" '<Content-Location>'
                ```
                """;
            return CommandResults.Success("Token issued for " + devClientId, markdown, CommandResultFormat.Markdown, displayImmediately: true);
        }
        catch (Exception ex) when (ex is HttpRequestException or InvalidOperationException or IOException or TaskCanceledException)
        {
            return CommandResults.Failure("No token: " + ex.Message);
        }
    }

    private static IResourceBuilder<ParameterResource> DatabasePassword(IDistributedApplicationBuilder builder) =>
        builder.AddParameter("helios-db-password", new GenerateParameterDefault { MinLength = 24, Special = false }, secret: true, persist: true);

    private static string DevClientId(IDistributedApplicationBuilder builder) => builder.Configuration["Helios:DevClientId"] ?? "helios-dev";
}
