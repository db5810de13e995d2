using Helios.Storage;
using Helios.Storage.Fhir;
using Helios.Storage.Search;
using Hl7.Fhir.Model;

namespace Helios.Api.Fhir;

/// <summary>Maps the exceptions of the FHIR layer to a status and an OperationOutcome body.</summary>
internal static class FhirExceptionMapping
{
    public static bool TryMap(Exception exception, out int status, out string outcome)
    {
        switch (exception)
        {
            case FhirOperationException fo:
                status = fo.Status;
                outcome = OperationOutcomes.Error(fo.Message, fo.Code);
                return true;
            case FhirParseException parse:
                status = 400;
                outcome = OperationOutcomes.Errors(parse.Issues.Select(i => "The body is not a valid FHIR R4 resource: " + i), OperationOutcome.IssueType.Structure);
                return true;
            case SearchException search:
                status = 400;
                outcome = OperationOutcomes.Error(search.Message, OperationOutcome.IssueType.Invalid);
                return true;
            case ResourceConflictException conflict:
                status = conflict.IsVersionMismatch ? 412 : 409;
                outcome = OperationOutcomes.Error(conflict.Message, OperationOutcome.IssueType.Conflict);
                return true;
            case BadHttpRequestException { StatusCode: 413 }:
                status = 413;
                outcome = OperationOutcomes.Error("The request body is larger than this server accepts (Helios:MaxRequestBodyBytes). Split the data into smaller requests or use the bulk load path.", OperationOutcome.IssueType.TooCostly);
                return true;
            case BadHttpRequestException bad:
                status = bad.StatusCode;
                outcome = OperationOutcomes.Error("Bad request: " + bad.Message, OperationOutcome.IssueType.Invalid);
                return true;
            default:
                status = 500;
                outcome = string.Empty;
                return false;
        }
    }
}
