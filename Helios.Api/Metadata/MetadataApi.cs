using Helios.Api.Auth;
using Helios.Api.Fhir;

namespace Helios.Api.Metadata;

/// <summary><c>GET /metadata</c>: the CapabilityStatement.</summary>
public static class MetadataApi
{
    public static RouteHandlerBuilder MapMetadataApi(this IEndpointRouteBuilder app) =>
        app.MapGet("/metadata", GetCapabilityStatement).WithTags("FHIR REST");

    public static async Task<FhirResult> GetCapabilityStatement(
        HttpRequest request, CapabilityStatementBuilder builder, FhirRequestReader reader, SmartDiscovery discovery, CancellationToken cancellationToken)
    {
        var server = await discovery.GetAsync(cancellationToken);
        return new(new FhirResponse(200, builder.Build(reader.BaseUrl(request), server?.TokenEndpoint, server?.AuthorizationEndpoint)));
    }
}
