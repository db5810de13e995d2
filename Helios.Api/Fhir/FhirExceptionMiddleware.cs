using Hl7.Fhir.Model;

namespace Helios.Api.Fhir;

/// <summary>Turns every failure into an OperationOutcome with the right status; unexpected ones are logged as 500.</summary>
internal sealed partial class FhirExceptionMiddleware(RequestDelegate next, ILogger<FhirExceptionMiddleware> logger)
{
    public async System.Threading.Tasks.Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; nothing to answer.
        }
        catch (Exception ex)
        {
            if (context.Response.HasStarted)
            {
                LogFailedAfterStart(logger, ex, context.Request.Method, context.Request.Path);
                throw;
            }

            if (!FhirExceptionMapping.TryMap(ex, out var status, out var body))
            {
                LogUnexpected(logger, ex, context.Request.Method, context.Request.Path);
                status = 500;
                body = OperationOutcomes.Error($"The server failed to process the request ({ex.GetType().Name}); the error was logged with trace id {context.TraceIdentifier}.", OperationOutcome.IssueType.Exception);
            }

            context.Response.Clear();
            if (ex is FhirOperationException { Headers: { Count: > 0 } headers })
            {
                foreach (var (name, value) in headers)
                {
                    context.Response.Headers[name] = value;
                }
            }

            await FhirHttp.WriteAsync(context, new FhirResponse(status, body), context.RequestAborted);
        }
    }

    [LoggerMessage(EventId = 5000, Level = LogLevel.Error, Message = "Unexpected failure of {Method} {Path}")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, string method, string path);

    [LoggerMessage(EventId = 5001, Level = LogLevel.Error, Message = "Failure after the response of {Method} {Path} had started")]
    private static partial void LogFailedAfterStart(ILogger logger, Exception exception, string method, string path);
}
