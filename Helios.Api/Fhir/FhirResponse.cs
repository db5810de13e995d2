namespace Helios.Api.Fhir;

/// <summary>The outcome of one FHIR interaction, shared by the REST endpoints and batch/transaction entries.
/// <see cref="Body"/> is JSON text (stored resource, Bundle or OperationOutcome) or null for no body.</summary>
public sealed record FhirResponse(int Status, string? Body, string? Location = null, string? ETag = null, DateTimeOffset? LastModified = null)
{
    public static string WeakETag(int version) => $"W/\"{version}\"";
}
