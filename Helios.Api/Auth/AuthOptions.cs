namespace Helios.Api.Auth;

/// <summary>
/// Settings under <c>Helios:Auth</c>: the OAuth 2.0 authorization server whose access tokens Helios accepts. Setting
/// <see cref="Authority"/> (or the Keycloak shape, <see cref="KeycloakOptions"/>) turns authorization on.
/// </summary>
public sealed class AuthOptions
{
    public const string SectionName = "Helios:Auth";

    /// <summary>The issuer; its OIDC discovery document and JWKS are read from it (and re-read when keys rotate).</summary>
    public string? Authority { get; set; }

    /// <summary>The audience (<c>aud</c>) access tokens must carry.</summary>
    public string Audience { get; set; } = "helios";

    /// <summary>Accept an <c>http://</c> authority (local development and tests only).</summary>
    public bool AllowHttp { get; set; }

    /// <summary>Tolerance for clock differences when checking a token's lifetime.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);
}
