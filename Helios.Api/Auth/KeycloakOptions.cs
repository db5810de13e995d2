namespace Helios.Api.Auth;

/// <summary>The configuration shape of the Keycloak adapters (<c>Keycloak:auth-server-url</c>, <c>realm</c>,
/// <c>resource</c>, <c>ssl-required</c>), accepted as an alternative to <see cref="AuthOptions"/>.</summary>
public sealed class KeycloakOptions
{
    public const string SectionName = "Keycloak";

    [ConfigurationKeyName("auth-server-url")]
    public string? AuthServerUrl { get; set; }

    [ConfigurationKeyName("realm")]
    public string? Realm { get; set; }

    /// <summary>The client id of this resource server: the audience of its tokens.</summary>
    [ConfigurationKeyName("resource")]
    public string? Resource { get; set; }

    /// <summary><c>external</c> (default), <c>all</c> or <c>none</c>; <c>none</c> allows an http:// server.</summary>
    [ConfigurationKeyName("ssl-required")]
    public string? SslRequired { get; set; }
}
