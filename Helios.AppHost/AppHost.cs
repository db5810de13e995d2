using Helios.AppHost.Local;
using Microsoft.Extensions.Configuration;

// The Helios application graph. Infrastructure modes (Helios:Infrastructure, or --Helios:Infrastructure=...):
//   local    - PostgreSQL, the S3 store and the authorization server as local processes (no container runtime)
//   embedded - the Api alone, SQLite and local files, no authorization (one process, zero configuration)
//   auto     - the default: local (the container mode joins later; see issue 12)
var builder = DistributedApplication.CreateBuilder(args);

var mode = (builder.Configuration["Helios:Infrastructure"] ?? "auto").ToLowerInvariant();
var dataDirectory = Path.GetFullPath(builder.Configuration["Helios:DataDirectory"] is { Length: > 0 } configured
    ? configured
    : Path.Combine(builder.AppHostDirectory, "..", "data", "apphost"));

switch (mode)
{
    case "embedded":
        builder.AddProject<Projects.Helios_Api>("helios-api")
            .WithEnvironment("Helios__Topology", "embedded")
            .WithEnvironment("Helios__DataDirectory", dataDirectory)
            .WithHttpHealthCheck("/health");
        break;
    case "local" or "auto":
        AddComposedStack(builder, Path.Combine(dataDirectory, "local"));
        break;
    default:
        throw new InvalidOperationException($"Helios:Infrastructure '{mode}' is not a mode: use local, embedded or auto.");
}

builder.Build().Run();

// The postgres-s3 topology: PostgreSQL, the S3 store, the authorization server, the workers (they own migrations) and
// the Api, each waiting for what it needs.
static void AddComposedStack(IDistributedApplicationBuilder builder, string dataDirectory)
{
    const string audience = "helios";
    var dbPassword = builder.AddParameter("helios-db-password", new GenerateParameterDefault { MinLength = 24, Special = false }, secret: true, persist: true);
    var s3AccessKey = builder.AddParameter("helios-files-access-key");
    var s3SecretKey = builder.AddParameter("helios-files-secret-key", secret: true);

    var db = builder.AddLocalPostgres("helios-db", dbPassword, dataDirectory);
    var files = builder.AddLocalS3("helios-files", dataDirectory);
    // A client registered by its JWKS URL, for the Inferno Bulk Data test kit (docs/inferno.md).
    var clients = new List<(string, string, string[])>();
    if (builder.Configuration["Helios:Inferno:JwksUri"] is { Length: > 0 } jwksUri)
    {
        clients.Add((builder.Configuration["Helios:Inferno:ClientId"] ?? "inferno-bulk", jwksUri, ["system/*.read", "system/*.rs"]));
    }

    var auth = builder.AddLocalAuthServer("helios-auth", dataDirectory, audience, builder.Configuration["Helios:DevClientId"] ?? "helios-dev", clients);
    var replicas = int.TryParse(builder.Configuration["Helios:WorkerReplicas"], out var n) && n > 0 ? n : 2;

    // Export settings given to the AppHost (--Helios:Export:PartitionRows=...) go to the workers and the Api.
    var exportSettings = builder.Configuration.GetSection("Helios:Export").AsEnumerable(true)
        .Where(setting => setting.Value is not null).ToList();

    IResourceBuilder<ProjectResource> Configure(IResourceBuilder<ProjectResource> project) => exportSettings
        .Aggregate(project, (p, setting) => p.WithEnvironment("Helios__Export__" + setting.Key.Replace(":", "__", StringComparison.Ordinal), setting.Value))
        .WithEnvironment("Helios__Topology", "postgres-s3")
        .WithReference(db, "helios-db").WaitFor(db)
        .WithEnvironment("Helios__Export__S3__ServiceUrl", files.GetEndpoint("http"))
        .WithEnvironment("Helios__Export__S3__AccessKey", s3AccessKey)
        .WithEnvironment("Helios__Export__S3__SecretKey", s3SecretKey)
        .WaitFor(files)
        .WithEnvironment("Helios__Auth__Authority", auth.GetEndpoint("http"))
        .WithEnvironment("Helios__Auth__Audience", audience)
        .WithEnvironment("Helios__Auth__AllowHttp", "true")
        .WaitFor(auth)
        .WithHttpHealthCheck("/health");

    var worker = Configure(builder.AddProject<Projects.Helios_Worker>("helios-worker")).WithReplicas(replicas);
    var api = Configure(builder.AddProject<Projects.Helios_Api>("helios-api"))
        .WithEnvironment("Helios__Export__RunWorkers", "false")
        .WaitFor(worker);

    // Sample data on first start (Helios:SeedPatients=0 turns it off): the generator's patients and a Group of them,
    // so an export works at once. The one-shot resource runs the Api's `seed` verb and ends.
    const string sampleGroup = "helios-sample";
    var seedPatients = int.TryParse(builder.Configuration["Helios:SeedPatients"], out var p) && p >= 0 ? p : 300;
    if (seedPatients > 0)
    {
        builder.AddProject<Projects.Helios_Api>("helios-seed", launchProfileName: null)
            .WithArgs("seed", "--patients", seedPatients.ToString(System.Globalization.CultureInfo.InvariantCulture), "--group-id", sampleGroup)
            .WithEnvironment("Helios__Topology", "postgres-s3")
            .WithReference(db, "helios-db").WaitFor(db)
            .WaitFor(worker);
        api.WithUrls(context => context.Urls.Add(new ResourceUrlAnnotation
        {
            Url = $"{context.GetEndpoint("http")?.Url}/Group/{sampleGroup}/$export",
            DisplayText = $"Group/{sampleGroup}/$export (seeded; needs a token)",
        }));
    }
}
