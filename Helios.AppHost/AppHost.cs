using Helios.AppHost;
using Helios.AppHost.Containers;

// The Helios application graph. Infrastructure modes (Helios:Infrastructure, or --Helios:Infrastructure=...):
//   containers - PostgreSQL, MinIO and Keycloak containers (needs a container runtime)
//   local      - the same roles as local processes: PostgreSQL from the installed server binaries, s3rver and
//                oidc-provider from the repository's npm folders (no container runtime)
//   auto       - the default: containers when a container runtime answers, else local
//   embedded   - the Api alone, SQLite and local files, no authorization (one process, zero configuration)
var builder = DistributedApplication.CreateBuilder(args);

var configured = (builder.Configuration["Helios:Infrastructure"] ?? "auto").ToLowerInvariant();
var mode = configured == "auto" ? (ContainerRuntime.Answers(builder.Configuration) ? "containers" : "local") : configured;
var dataDirectory = Path.GetFullPath(builder.Configuration["Helios:DataDirectory"] is { Length: > 0 } given
    ? given
    : Path.Combine(builder.AppHostDirectory, "..", "data", "apphost"));

switch (mode)
{
    case "embedded":
        builder.AddProject<Projects.Helios_Api>("helios-api")
            .WithEnvironment("Helios__Topology", "embedded")
            .WithEnvironment("Helios__DataDirectory", dataDirectory)
            .WithHttpHealthCheck("/health");
        break;
    case "local":
        HeliosStack.AddComposed(builder, HeliosStack.Local(builder, Path.Combine(dataDirectory, "local")));
        break;
    case "containers":
        HeliosStack.AddComposed(builder, HeliosStack.Containers(builder, Path.Combine(dataDirectory, "containers")));
        break;
    default:
        throw new InvalidOperationException($"Helios:Infrastructure '{configured}' is not a mode: use auto, containers, local or embedded.");
}

builder.Build().Run();
