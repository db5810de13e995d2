using System.Globalization;
using Helios.Export.Engine;
using Helios.Export.Requests;
using Helios.Storage;
using Helios.Storage.Fhir;
using Helios.Storage.Search;
using Hl7.Fhir.Model;

namespace Helios.Api.Fhir;

/// <summary>The failures a caller caused, each with its status and an OperationOutcome that says what to change.
/// Anything not listed here is a server fault (500).</summary>
internal static class FhirExceptionMapping
{
    private static readonly IReadOnlyDictionary<string, string> s_noHeaders = new Dictionary<string, string>();

    /// <summary>What a client is told to wait when the database is down (a restart or failover takes seconds).</summary>
    public const int StoreRetryAfterSeconds = 5;

    /// <summary>The database cannot be reached or is shutting down, restarting or busy: a transient state the client
    /// should retry (503), not a server fault (500). Npgsql marks these transient (connection refused or broken,
    /// admin shutdown 57P01-57P03, pool timeout); SQLite reports busy or locked.</summary>
    public static bool IsStoreUnavailable(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case Npgsql.PostgresException postgres when postgres.SqlState.StartsWith("57P", StringComparison.Ordinal) || postgres.SqlState.StartsWith("08", StringComparison.Ordinal) || postgres.SqlState == "53300":
                    return true;
                case Npgsql.NpgsqlException npgsql when npgsql.IsTransient:
                    return true;
                case Microsoft.Data.Sqlite.SqliteException { SqliteErrorCode: 5 or 6 }:
                    return true;
            }
        }

        return false;
    }

    private static Exception Innermost(Exception exception)
    {
        var e = exception;
        while (e.InnerException is not null)
        {
            e = e.InnerException;
        }

        return e;
    }

    public static bool TryMap(Exception exception, out int status, out string outcome, out IReadOnlyDictionary<string, string> headers)
    {
        headers = s_noHeaders;
        switch (exception)
        {
            case FhirOperationException fo:
                status = fo.Status;
                outcome = OperationOutcomes.Error(fo.Message, fo.Code);
                headers = fo.Headers.AsReadOnly();
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
            case Auth.SmartForbiddenException forbidden:
                status = 403;
                outcome = OperationOutcomes.Error(forbidden.Message, OperationOutcome.IssueType.Forbidden);
                headers = new Dictionary<string, string> { ["WWW-Authenticate"] = "Bearer realm=\"helios\", error=\"insufficient_scope\"" };
                return true;
            case ExportRequestException request:
                status = 400;
                outcome = OperationOutcomes.Error(request.Message, OperationOutcome.IssueType.Invalid);
                return true;
            case ExportGroupNotFoundException or ExportJobNotFoundException:
                status = 404;
                outcome = OperationOutcomes.Error(exception.Message, OperationOutcome.IssueType.NotFound);
                return true;
            case ExportThrottledException throttled:
                status = 429;
                outcome = OperationOutcomes.Error(throttled.Message, OperationOutcome.IssueType.Throttled);
                headers = new Dictionary<string, string>
                {
                    ["Retry-After"] = ((long)Math.Ceiling(throttled.RetryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture),
                };
                return true;
            case BadHttpRequestException { StatusCode: 413 }:
                status = 413;
                outcome = OperationOutcomes.Error("The request body is larger than this server accepts (Helios:MaxRequestBodyBytes). Split the data into smaller requests or use the bulk load path.", OperationOutcome.IssueType.TooCostly);
                return true;
            case BadHttpRequestException bad:
                status = bad.StatusCode;
                outcome = OperationOutcomes.Error("Bad request: " + bad.Message, OperationOutcome.IssueType.Invalid);
                return true;
            case var unavailable when IsStoreUnavailable(unavailable):
                status = 503;
                outcome = OperationOutcomes.Error(
                    $"The database is not reachable right now ({Innermost(unavailable).Message.TrimEnd('.')}). Nothing was changed by this request; retry after {StoreRetryAfterSeconds} seconds.",
                    OperationOutcome.IssueType.Transient);
                headers = new Dictionary<string, string> { ["Retry-After"] = StoreRetryAfterSeconds.ToString(CultureInfo.InvariantCulture) };
                return true;
            default:
                status = 500;
                outcome = string.Empty;
                return false;
        }
    }
}
