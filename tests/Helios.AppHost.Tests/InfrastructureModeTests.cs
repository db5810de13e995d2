using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;

namespace Helios.AppHost.Tests;

/// <summary>
/// The graph each infrastructure mode builds, read from the application model without starting it (this machine has
/// no container engine, so the containers mode is checked as a model: images, endpoints, mounts, parameters,
/// the realm import and the development client's certificate), and the auto mode's choice both ways.
/// </summary>
public sealed class InfrastructureModeTests
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task ContainersMode_ComposesPostgresMinioAndKeycloak_WithTheRealmAndTheDevClientsCertificate()
    {
        var data = TempDirectory();
        var builder = await CreateAsync("--Helios:Infrastructure=containers", $"--Helios:DataDirectory={data}", "--Helios:Inferno:JwksUri=http://inferno.example/jwks.json");
        var resources = builder.Resources.ToDictionary(r => r.Name);

        var db = Assert.IsType<PostgresServerResource>(resources["helios-db"]);
        Assert.Contains(db.Annotations.OfType<ContainerMountAnnotation>(), m => m.Type == ContainerMountType.Volume);
        Assert.Equal("helios", Assert.IsType<PostgresDatabaseResource>(resources["helios-db-helios"]).DatabaseName);

        var minio = Assert.IsType<ContainerResource>(resources["helios-files"]);
        var minioImage = Assert.Single(minio.Annotations.OfType<ContainerImageAnnotation>());
        Assert.Equal(("minio/minio", "docker.io"), (minioImage.Image, minioImage.Registry));
        Assert.Matches("^RELEASE\\.", minioImage.Tag);
        Assert.Contains(minio.Annotations.OfType<EndpointAnnotation>(), e => e.Name == "http" && e.TargetPort == 9000);
        var minioEnv = await EnvironmentAsync(minio);
        Assert.True(minioEnv["MINIO_ROOT_PASSWORD"].Length >= 8, "MinIO refuses root passwords under 8 characters");

        var keycloak = Assert.IsType<ContainerResource>(resources["helios-auth"]);
        var keycloakImage = Assert.Single(keycloak.Annotations.OfType<ContainerImageAnnotation>());
        Assert.Equal(("keycloak/keycloak", "quay.io"), (keycloakImage.Image, keycloakImage.Registry));
        var mount = Assert.Single(keycloak.Annotations.OfType<ContainerMountAnnotation>(), m => m.Target == "/opt/keycloak/data/import");
        Assert.True(mount.IsReadOnly);
        Assert.True(File.Exists(Path.Combine(mount.Source!, "helios-realm.json")));
        var args = await ArgsAsync(keycloak);
        Assert.Equal(["start-dev", "--import-realm"], args);
        var keycloakEnv = await EnvironmentAsync(keycloak);
        Assert.Equal("http://inferno.example/jwks.json", keycloakEnv["INFERNO_JWKS_URL"]);

        // The certificate handed to the realm holds the public key of the private key the token command signs with.
        using var certificate = X509CertificateLoader.LoadCertificate(Convert.FromBase64String(keycloakEnv["HELIOS_DEV_CERTIFICATE"]));
        using var key = RSA.Create();
        key.ImportFromPem(await File.ReadAllTextAsync(Path.Combine(data, "containers", "auth", "helios-dev.private.pem")));
        Assert.Equal(key.ExportSubjectPublicKeyInfo(), certificate.GetRSAPublicKey()!.ExportSubjectPublicKeyInfo());

        var api = Assert.IsType<ProjectResource>(resources["helios-api"]);
        Assert.Contains(api.Annotations.OfType<ResourceCommandAnnotation>(), c => c.Name == "dev-token");
        Assert.Contains(api.Annotations.OfType<WaitAnnotation>(), w => w.Resource.Name == "helios-auth");
        Assert.Contains(api.Annotations.OfType<WaitAnnotation>(), w => w.Resource.Name == "helios-worker");
        var worker = Assert.IsType<ProjectResource>(resources["helios-worker"]);
        Assert.Equal(2, Assert.Single(worker.Annotations.OfType<ReplicaAnnotation>()).Replicas);
        Assert.Contains(worker.Annotations.OfType<WaitAnnotation>(), w => w.Resource.Name == "helios-files");
        TryDelete(data);
    }

    [Fact]
    public void Realm_RegistersTheDevAndInfernoClients_WithSignedJwtAuthentication_AndTheHeliosAudience()
    {
        var realm = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppHostDirectory(), "auth", "keycloak", "helios-realm.json"))).RootElement;
        var scopes = realm.GetProperty("clientScopes").EnumerateArray().Select(s => s.GetProperty("name").GetString()).ToHashSet();
        var clients = realm.GetProperty("clients").EnumerateArray().ToDictionary(c => c.GetProperty("clientId").GetString()!);
        foreach (var id in new[] { "helios-dev", "inferno" })
        {
            var client = clients[id];
            Assert.Equal("client-jwt", client.GetProperty("clientAuthenticatorType").GetString());
            Assert.True(client.GetProperty("serviceAccountsEnabled").GetBoolean());
            Assert.Contains(client.GetProperty("protocolMappers").EnumerateArray(), m => m.GetProperty("config").GetProperty("included.custom.audience").GetString() == "helios");
            Assert.All(client.GetProperty("optionalClientScopes").EnumerateArray(), s => Assert.Contains(s.GetString(), scopes));
        }

        Assert.StartsWith("${HELIOS_DEV_CERTIFICATE", clients["helios-dev"].GetProperty("attributes").GetProperty("jwt.credential.certificate").GetString(), StringComparison.Ordinal);
        Assert.StartsWith("${INFERNO_JWKS_URL", clients["inferno"].GetProperty("attributes").GetProperty("jwks.url").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("true", "containers")] // /bin/true: `true info` exits 0, a runtime that answers
    [InlineData("false", "local")] // exits 1, like a docker client without an engine
    [InlineData("helios-no-such-runtime", "local")] // not installed
    public async Task AutoMode_PicksContainers_OnlyWhenTheContainerRuntimeAnswers(string runtime, string expected)
    {
        var data = TempDirectory();
        var builder = await CreateAsync("--Helios:Infrastructure=auto", $"--Helios:DataDirectory={data}", $"--ASPIRE_CONTAINER_RUNTIME={runtime}");
        var db = builder.Resources.Single(r => r.Name == "helios-db");
        Assert.Equal(expected, db is PostgresServerResource ? "containers" : "local");
        TryDelete(data);
    }

    private static async Task<IDistributedApplicationTestingBuilder> CreateAsync(params string[] args)
    {
        using var cts = new CancellationTokenSource(s_timeout);
        return await DistributedApplicationTestingBuilder.CreateAsync<Projects.Helios_AppHost>(
            [.. args, "--Parameters:helios-db-password=mode-test", "--Parameters:helios-minio-password=mode-test-password", "--Parameters:helios-auth-admin-password=mode-test-admin"], cts.Token);
    }

    private static async Task<Dictionary<string, string>> EnvironmentAsync(IResourceWithEnvironment resource)
    {
        var context = new EnvironmentCallbackContext(new DistributedApplicationExecutionContext(DistributedApplicationOperation.Run));
        foreach (var callback in resource.Annotations.OfType<EnvironmentCallbackAnnotation>())
        {
            await callback.Callback(context);
        }

        var values = new Dictionary<string, string>();
        foreach (var (name, value) in context.EnvironmentVariables)
        {
            values[name] = value switch
            {
                string text => text,
                IValueProvider provider => await provider.GetValueAsync() ?? "",
                _ => value.ToString() ?? "",
            };
        }

        return values;
    }

    private static async Task<List<string>> ArgsAsync(IResourceWithArgs resource)
    {
        var list = new List<object>();
        var context = new CommandLineArgsCallbackContext(list);
        foreach (var callback in resource.Annotations.OfType<CommandLineArgsCallbackAnnotation>())
        {
            await callback.Callback(context);
        }

        return [.. list.Select(a => a.ToString()!)];
    }

    private static string AppHostDirectory([System.Runtime.CompilerServices.CallerFilePath] string path = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, "..", "..", "Helios.AppHost"));

    private static string TempDirectory() => Path.Combine(Path.GetTempPath(), "helios-mode-" + Guid.NewGuid().ToString("N")[..8]);

    private static void TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
