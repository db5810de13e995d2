using Helios.Api.Auth;

namespace Helios.Api.Fhir;

/// <summary>The services every FHIR REST handler takes, bound with <c>[AsParameters]</c>.</summary>
public sealed record FhirEndpointServices(FhirService Fhir, BundleProcessor Bundles, FhirRequestReader Reader, SmartAccess Access);
