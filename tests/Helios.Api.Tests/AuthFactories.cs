namespace Helios.Api.Tests;

/// <summary>The Api with authorization on, against a real oidc-provider started for it. The clients:
/// <c>full</c> (may be granted anything under system/), <c>other</c> (another client with full rights, to prove
/// clients cannot see each other's exports), <c>limited</c> (Patient only), and <c>ec</c> (ES384 key, v1 read).</summary>
internal static class AuthSetup
{
    public static readonly OidcClient Full = OidcClient.Rsa("full-client", "system/*.cruds", "system/*.*");
    public static readonly OidcClient Other = OidcClient.Rsa("other-client", "system/*.cruds");
    public static readonly OidcClient Limited = OidcClient.Rsa("limited-client", "system/Patient.rs", "system/Patient.read", "system/Patient.cud");
    public static readonly OidcClient Ec = OidcClient.EcP384("ec-client", "system/*.read");

    public static IReadOnlyList<OidcClient> Clients => [Full, Other, Limited, Ec];

    public static async Task<OidcServer> StartAsync(HeliosApiFactory factory, int accessTokenTtlSeconds = 3600)
    {
        var server = await OidcServer.StartAsync(Clients, accessTokenTtlSeconds: accessTokenTtlSeconds);
        factory.Settings["Helios:Auth:Authority"] = server.Issuer;
        factory.Settings["Helios:Auth:AllowHttp"] = "true";
        factory.Settings["Helios:Auth:ClockSkew"] = "00:00:00";
        return server;
    }
}

/// <summary>Embedded, authorization on; its clients carry a full-access token.</summary>
public class AuthEmbeddedFactory : HeliosApiFactory
{
    public AuthEmbeddedFactory()
    {
    }

    protected AuthEmbeddedFactory(bool postgres)
        : base(postgres)
    {
    }

    public OidcServer Authorization { get; private set; } = null!;

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        ExportTestSettings.Apply(this, slow: false);
        Authorization = await AuthSetup.StartAsync(this);
        AccessToken = await Authorization.GetAccessTokenAsync(AuthSetup.Full, "system/*.cruds");
    }

    protected override async Task DisposeExtrasAsync()
    {
        if (Authorization is not null)
        {
            await Authorization.DisposeAsync();
        }
    }
}

/// <summary>postgres-s3, authorization on.</summary>
public sealed class AuthPostgresS3Factory() : AuthEmbeddedFactory(postgres: true);

/// <summary>The whole export lifecycle with authorization on (embedded).</summary>
public sealed class AuthEmbeddedExportTests(AuthEmbeddedFactory factory) : ExportContract<AuthEmbeddedFactory>(factory);

/// <summary>The whole export lifecycle with authorization on (postgres-s3).</summary>
public sealed class AuthPostgresS3ExportTests(AuthPostgresS3Factory factory) : ExportContract<AuthPostgresS3Factory>(factory);
