namespace Helios.Storage.Fhir;

/// <summary>A request body that is not a valid FHIR R4 resource. Carries every issue the parser reported.</summary>
public sealed class FhirParseException(IReadOnlyList<string> issues)
    : Exception(issues.Count > 0 ? issues[0] : "Invalid FHIR resource")
{
    public IReadOnlyList<string> Issues { get; } = issues;
}
