namespace Helios.Api.Auth;

/// <summary>The authorization settings as resolved at startup from either configuration shape.</summary>
public sealed record HeliosAuthSettings(bool Enabled, string? Authority, string Audience, bool AllowHttp, TimeSpan ClockSkew)
{
    public static HeliosAuthSettings From(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var auth = configuration.GetSection(AuthOptions.SectionName).Get<AuthOptions>() ?? new AuthOptions();
        var keycloak = configuration.GetSection(KeycloakOptions.SectionName).Get<KeycloakOptions>() ?? new KeycloakOptions();
        string? authority = null;
        var audience = auth.Audience;
        var allowHttp = auth.AllowHttp;
        if (!string.IsNullOrWhiteSpace(auth.Authority))
        {
            authority = auth.Authority.TrimEnd('/');
        }
        else if (!string.IsNullOrWhiteSpace(keycloak.AuthServerUrl))
        {
            if (string.IsNullOrWhiteSpace(keycloak.Realm))
            {
                throw new InvalidOperationException("Keycloak:auth-server-url is set but Keycloak:realm is not: set the realm whose tokens Helios accepts.");
            }

            authority = $"{keycloak.AuthServerUrl.TrimEnd('/')}/realms/{keycloak.Realm}";
            audience = string.IsNullOrWhiteSpace(keycloak.Resource) ? audience : keycloak.Resource;
            allowHttp = string.Equals(keycloak.SslRequired, "none", StringComparison.OrdinalIgnoreCase);
        }

        if (authority is null)
        {
            return new HeliosAuthSettings(false, null, audience, allowHttp, auth.ClockSkew);
        }

        if (!Uri.TryCreate(authority, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http"))
        {
            throw new InvalidOperationException($"The authorization server '{authority}' is not an absolute http(s) URL.");
        }

        if (uri.Scheme == "http" && !allowHttp)
        {
            throw new InvalidOperationException(
                $"The authorization server '{authority}' is plain http: tokens and keys would travel unprotected. Use https, or for local development set Helios:Auth:AllowHttp=true (Keycloak:ssl-required=none).");
        }

        return new HeliosAuthSettings(true, authority, audience, allowHttp, auth.ClockSkew);
    }
}
