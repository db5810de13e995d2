using System.Diagnostics;
using Microsoft.Extensions.Configuration;

namespace Helios.AppHost.Containers;

/// <summary>
/// The infrastructure roles as containers (the <c>containers</c> mode): PostgreSQL (the Aspire integration, with a data
/// volume), MinIO as the S3 store (the workers create the bucket at start) and Keycloak with the Helios realm imported
/// from <c>auth/keycloak/helios-realm.json</c>. Images are pinned here.
/// </summary>
internal static class ContainerInfrastructure
{
    public const string MinioImage = "minio/minio";
    public const string MinioTag = "RELEASE.2025-09-07T16-13-09Z";
    public const string KeycloakImage = "keycloak/keycloak";
    public const string KeycloakTag = "26.2";
    public const string Realm = "helios";

    /// <summary>The PostgreSQL server resource (named <paramref name="name"/>) and its <c>helios</c> database.</summary>
    public static IResourceBuilder<PostgresDatabaseResource> AddContainerPostgres(this IDistributedApplicationBuilder builder, string name, IResourceBuilder<ParameterResource> password) =>
        builder.AddPostgres(name, password: password)
            .WithDataVolume(name + "-data")
            .AddDatabase(name + "-helios", "helios");

    public static IResourceBuilder<ContainerResource> AddMinio(this IDistributedApplicationBuilder builder, string name, IResourceBuilder<ParameterResource> user, IResourceBuilder<ParameterResource> password) =>
        builder.AddContainer(name, MinioImage, MinioTag)
            .WithImageRegistry("docker.io")
            .WithArgs("server", "/data", "--console-address", ":9001")
            .WithHttpEndpoint(targetPort: 9000, name: "http")
            .WithHttpEndpoint(targetPort: 9001, name: "console")
            .WithEnvironment("MINIO_ROOT_USER", user)
            .WithEnvironment("MINIO_ROOT_PASSWORD", password)
            .WithVolume(name + "-data", "/data")
            .WithHttpHealthCheck("/minio/health/live", endpointName: "http");

    /// <summary>Keycloak in development mode with the realm imported at every start. The realm's placeholders are
    /// filled from the environment: the development client's certificate, and the JWKS URLs of the Inferno kit and of
    /// a backend client.</summary>
    public static IResourceBuilder<ContainerResource> AddKeycloak(
        this IDistributedApplicationBuilder builder, string name, IResourceBuilder<ParameterResource> adminPassword, string devCertificate, string? infernoJwksUri, string? backendJwksUri)
    {
        var keycloak = builder.AddContainer(name, KeycloakImage, KeycloakTag)
            .WithImageRegistry("quay.io")
            .WithArgs("start-dev", "--import-realm")
            .WithHttpEndpoint(targetPort: 8080, name: "http")
            .WithEnvironment("KC_BOOTSTRAP_ADMIN_USERNAME", "admin")
            .WithEnvironment("KC_BOOTSTRAP_ADMIN_PASSWORD", adminPassword)
            .WithEnvironment("HELIOS_DEV_CERTIFICATE", devCertificate)
            .WithBindMount(Path.Combine(builder.AppHostDirectory, "auth", "keycloak"), "/opt/keycloak/data/import", isReadOnly: true)
            // Ready once the realm is imported and serves its discovery document.
            .WithHttpHealthCheck($"/realms/{Realm}/.well-known/openid-configuration", endpointName: "http");
        if (infernoJwksUri is { Length: > 0 })
        {
            keycloak.WithEnvironment("INFERNO_JWKS_URL", infernoJwksUri);
        }

        if (backendJwksUri is { Length: > 0 })
        {
            keycloak.WithEnvironment("HELIOS_BACKEND_JWKS_URL", backendJwksUri);
        }

        return keycloak;
    }
}

/// <summary>Whether a container runtime answers here (the <c>auto</c> mode's choice).</summary>
internal static class ContainerRuntime
{
    /// <summary>Runs <c>{runtime} info</c> (Aspire's configured runtime, docker by default): true when it exits 0 within
    /// ten seconds. A client without an engine (docker installed, no daemon) answers non-zero.</summary>
    public static bool Answers(IConfiguration configuration)
    {
        var runtime = configuration["ASPIRE_CONTAINER_RUNTIME"] ?? configuration["DOTNET_ASPIRE_CONTAINER_RUNTIME"] ?? "docker";
        try
        {
            using var process = Process.Start(new ProcessStartInfo(runtime, "info")
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            });
            if (process is null)
            {
                return false;
            }

            _ = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromSeconds(10)))
            {
                process.Kill(entireProcessTree: true);
                return false;
            }

            return process.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false; // not installed
        }
    }
}
