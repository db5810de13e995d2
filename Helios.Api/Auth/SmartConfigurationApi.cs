using System.Text.Json.Nodes;
using Helios.Api.Fhir;
using Hl7.Fhir.Model;

namespace Helios.Api.Auth;

/// <summary><c>GET /.well-known/smart-configuration</c>: SMART discovery for backend services, derived from the
/// authorization server's own discovery document (its endpoints, grant types, client authentication methods and
/// algorithms, scopes) plus the capabilities this resource server implements.</summary>
public static class SmartConfigurationApi
{
    public static RouteHandlerBuilder MapSmartConfigurationApi(this IEndpointRouteBuilder app) =>
        app.MapGet("/.well-known/smart-configuration", GetSmartConfigurationAsync).WithTags("SMART").AllowAnonymous();

    public static async Task<IResult> GetSmartConfigurationAsync(SmartDiscovery discovery, CancellationToken cancellationToken)
    {
        var server = await discovery.GetAsync(cancellationToken);
        if (server is null)
        {
            return FhirResult.Outcome(404, OperationOutcomes.Error(
                "Authorization is off on this server (no Helios:Auth:Authority), so there is no SMART configuration: every route is open.",
                OperationOutcome.IssueType.NotFound));
        }

        static JsonArray Array(IEnumerable<string> values) => new([.. values.Distinct(StringComparer.Ordinal).Select(v => JsonValue.Create(v))]);
        var body = new JsonObject
        {
            ["issuer"] = server.Issuer,
            ["jwks_uri"] = server.JwksUri,
            ["token_endpoint"] = server.TokenEndpoint,
            ["grant_types_supported"] = Array(server.GrantTypesSupported),
            ["token_endpoint_auth_methods_supported"] = Array(server.TokenEndpointAuthMethodsSupported),
            ["token_endpoint_auth_signing_alg_values_supported"] = Array(server.TokenEndpointAuthSigningAlgValuesSupported),
            ["scopes_supported"] = Array(server.ScopesSupported),
            ["capabilities"] = Array(["client-confidential-asymmetric", "permission-v1", "permission-v2"]),
        };
        if (!string.IsNullOrEmpty(server.AuthorizationEndpoint))
        {
            body["authorization_endpoint"] = server.AuthorizationEndpoint;
        }

        if (server.CodeChallengeMethodsSupported.Count > 0)
        {
            body["code_challenge_methods_supported"] = Array(server.CodeChallengeMethodsSupported);
        }

        return TypedResults.Text(body.ToJsonString(), "application/json", System.Text.Encoding.UTF8);
    }
}
