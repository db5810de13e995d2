namespace Helios.Export.Requests;

public static class ExportFormats
{
    public const string FhirNdjson = "application/fhir+ndjson";

    public static readonly IReadOnlySet<string> Accepted = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        "application/fhir+ndjson", "application/ndjson", "ndjson",
    };
}
