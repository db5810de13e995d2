using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;

namespace Helios.Api.Auth;

/// <summary>The authorization server's discovery document (as JwtBearer fetched and caches it), or null when
/// authorization is off.</summary>
public sealed class SmartDiscovery(HeliosAuthSettings settings, IOptionsMonitor<JwtBearerOptions> jwtOptions)
{
    public async Task<OpenIdConnectConfiguration?> GetAsync(CancellationToken cancellationToken)
    {
        if (!settings.Enabled)
        {
            return null;
        }

        var manager = jwtOptions.Get(JwtBearerDefaults.AuthenticationScheme).ConfigurationManager
            ?? throw new InvalidOperationException("JwtBearer has no configuration manager.");
        return await manager.GetConfigurationAsync(cancellationToken);
    }
}
