using Helios.Storage.Fhir;
using Hl7.Fhir.Model;

namespace Helios.Api.Fhir;

public static class OperationOutcomes
{
    public static string Error(string diagnostics, OperationOutcome.IssueType code = OperationOutcome.IssueType.Processing) =>
        Build(OperationOutcome.IssueSeverity.Error, code, [diagnostics]);

    public static string Errors(IEnumerable<string> diagnostics, OperationOutcome.IssueType code) =>
        Build(OperationOutcome.IssueSeverity.Error, code, diagnostics);

    public static string Information(IEnumerable<string> diagnostics) =>
        Build(OperationOutcome.IssueSeverity.Information, OperationOutcome.IssueType.Informational, diagnostics);

    public static OperationOutcome Create(OperationOutcome.IssueSeverity severity, OperationOutcome.IssueType code, IEnumerable<string> diagnostics)
    {
        var outcome = new OperationOutcome();
        foreach (var d in diagnostics)
        {
            outcome.Issue.Add(new OperationOutcome.IssueComponent { Severity = severity, Code = code, Diagnostics = d });
        }

        return outcome;
    }

    private static string Build(OperationOutcome.IssueSeverity severity, OperationOutcome.IssueType code, IEnumerable<string> diagnostics) =>
        FhirJson.Serialize(Create(severity, code, diagnostics));
}
