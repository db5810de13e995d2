using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Diagnostics;

namespace Helios.Api.Fhir;

/// <summary>
/// Turns every exception that escapes a handler into an <c>OperationOutcome</c>: the failures a caller caused
/// (<see cref="FhirExceptionMapping"/>) get their 4xx status and a diagnostic that says what to change; anything
/// else is a server fault, logged, and answered 500 with the trace id.
/// </summary>
internal sealed partial class OperationOutcomeExceptionHandler(ILogger<OperationOutcomeExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        ArgumentNullException.ThrowIfNull(exception);
        if (exception is OperationCanceledException && httpContext.RequestAborted.IsCancellationRequested)
        {
            // The client went away; there is nobody to answer.
            return true;
        }

        if (!FhirExceptionMapping.TryMap(exception, out var status, out var body, out var headers))
        {
            LogUnexpected(logger, exception, httpContext.Request.Method, httpContext.Request.Path);
            status = 500;
            body = OperationOutcomes.Error(
                $"The server failed to process the request ({exception.GetType().Name}); the error was logged with trace id {httpContext.TraceIdentifier}.",
                OperationOutcome.IssueType.Exception);
        }

        var result = FhirResult.Outcome(status, body);
        foreach (var (name, value) in headers)
        {
            result.Headers[name] = value;
        }

        await result.ExecuteAsync(httpContext);
        return true;
    }

    [LoggerMessage(EventId = 5000, Level = LogLevel.Error, Message = "Unexpected failure of {Method} {Path}")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, string method, string path);
}
