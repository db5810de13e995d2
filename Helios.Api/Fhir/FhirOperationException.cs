using Hl7.Fhir.Model;

namespace Helios.Api.Fhir;

/// <summary>A request that fails with a given HTTP status and an OperationOutcome diagnostic.</summary>
public sealed class FhirOperationException(int status, string diagnostics, OperationOutcome.IssueType code = OperationOutcome.IssueType.Processing)
    : Exception(diagnostics)
{
    public int Status { get; } = status;

    public OperationOutcome.IssueType Code { get; } = code;

    /// <summary>Response headers that belong to the error (e.g. Retry-After on 429).</summary>
    public IDictionary<string, string> Headers { get; } = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
}
