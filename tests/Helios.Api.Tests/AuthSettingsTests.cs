using Helios.Api.Auth;
using Microsoft.Extensions.Configuration;

namespace Helios.Api.Tests;

/// <summary>Both configuration shapes turn authorization on; an http issuer only when allowed.</summary>
public sealed class AuthSettingsTests
{
    private static HeliosAuthSettings From(params (string Key, string Value)[] settings) =>
        HeliosAuthSettings.From(new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))).Build());

    [Fact]
    public void NoIssuer_MeansOff() => Assert.False(From().Enabled);

    [Fact]
    public void PlainShape_TurnsItOn()
    {
        var settings = From(("Helios:Auth:Authority", "https://idp.example/issuer/"), ("Helios:Auth:Audience", "fhir"));
        Assert.Equal((true, "https://idp.example/issuer", "fhir", false), (settings.Enabled, settings.Authority, settings.Audience, settings.AllowHttp));
    }

    [Fact]
    public void KeycloakShape_TurnsItOn_WithTheRealmAsIssuer_AndTheResourceAsAudience()
    {
        var settings = From(("Keycloak:auth-server-url", "http://keycloak:8080/"), ("Keycloak:realm", "helios"), ("Keycloak:resource", "helios-api"), ("Keycloak:ssl-required", "none"));
        Assert.Equal((true, "http://keycloak:8080/realms/helios", "helios-api", true), (settings.Enabled, settings.Authority, settings.Audience, settings.AllowHttp));
    }

    [Fact]
    public void HttpIssuer_IsRefusedUnlessAllowed()
    {
        var plain = Assert.Throws<InvalidOperationException>(() => From(("Helios:Auth:Authority", "http://idp.example")));
        Assert.Contains("AllowHttp", plain.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => From(("Keycloak:auth-server-url", "http://keycloak:8080"), ("Keycloak:realm", "helios")));
        Assert.True(From(("Helios:Auth:Authority", "http://idp.example"), ("Helios:Auth:AllowHttp", "true")).Enabled);
        Assert.Contains("realm", Assert.Throws<InvalidOperationException>(() => From(("Keycloak:auth-server-url", "https://keycloak"))).Message, StringComparison.Ordinal);
    }
}
