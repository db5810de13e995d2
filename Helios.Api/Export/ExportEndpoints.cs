using System.Globalization;
using System.IO.Compression;
using System.Text.Json;
using Helios.Api.Fhir;
using Helios.Export;
using Helios.Export.Engine;
using Helios.Export.Files;
using Helios.Storage.Fhir;
using Helios.Storage.Indexing;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using Task = System.Threading.Tasks.Task;

namespace Helios.Api.Export;

/// <summary>
/// FHIR Bulk Data Access $export: kick-off at system, Patient and Group level (GET, or POST of a Parameters
/// resource), status polling, cancel, and file downloads. Handlers talk to the export ports only; the topology
/// decides what is behind them.
/// </summary>
public static class ExportEndpoints
{
    public const string StatusSegment = "$export-status";
    public const string FileSegment = "$export-file";
    private const string Ndjson = "application/fhir+ndjson";

    public static IEndpointRouteBuilder MapExportApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/$export", context => KickoffAsync(context, ExportLevel.System, null));
        app.MapPost("/$export", context => KickoffAsync(context, ExportLevel.System, null));
        app.MapGet("/Patient/$export", context => KickoffAsync(context, ExportLevel.Patient, null));
        app.MapPost("/Patient/$export", context => KickoffAsync(context, ExportLevel.Patient, null));
        app.MapGet("/Group/{id}/$export", (HttpContext context, string id) => KickoffAsync(context, ExportLevel.Group, id));
        app.MapPost("/Group/{id}/$export", (HttpContext context, string id) => KickoffAsync(context, ExportLevel.Group, id));
        app.MapGet($"/{StatusSegment}/{{jobId}}", StatusAsync);
        app.MapDelete($"/{StatusSegment}/{{jobId}}", CancelAsync);
        app.MapGet($"/{FileSegment}/{{jobId}}/{{fileName}}", DownloadAsync);
        return app;
    }

    private static async Task KickoffAsync(HttpContext context, ExportLevel level, string? groupId)
    {
        var ct = context.RequestAborted;
        var prefer = string.Join(",", context.Request.Headers["Prefer"].Select(v => v ?? string.Empty));
        if (!prefer.Contains("respond-async", StringComparison.OrdinalIgnoreCase))
        {
            throw new FhirOperationException(400, "$export runs asynchronously: send the header Prefer: respond-async.", OperationOutcome.IssueType.Required);
        }

        var accept = context.Request.Headers.Accept.ToString();
        if (accept.Length > 0 && !accept.Contains("json", StringComparison.OrdinalIgnoreCase) && !accept.Contains("*/*", StringComparison.Ordinal))
        {
            throw new FhirOperationException(400, $"Accept '{accept}' is not supported for $export: send Accept: application/fhir+json.", OperationOutcome.IssueType.NotSupported);
        }

        var lenient = prefer.Contains("handling=lenient", StringComparison.OrdinalIgnoreCase);
        var parameters = FhirHttp.QueryPairs(context);
        if (HttpMethods.IsPost(context.Request.Method))
        {
            parameters.AddRange(ReadParametersBody(await FhirHttp.ReadBodyAsync(context, ct)));
        }

        var registry = context.RequestServices.GetRequiredService<SearchParameterRegistry>();
        ExportRequest request;
        try
        {
            var known = new HashSet<string>(registry.ResourceTypes, StringComparer.Ordinal);
            var compartment = new HashSet<string>(registry.PatientCompartmentTypes, StringComparer.Ordinal) { "Patient" };
            request = ExportRequestParser.Parse(level, groupId, parameters, lenient, known, compartment);
        }
        catch (ExportRequestException ex)
        {
            throw new FhirOperationException(400, ex.Message, OperationOutcome.IssueType.Invalid);
        }

        var baseUrl = FhirHttp.BaseUrl(context);
        var path = context.Request.Path.Value ?? string.Empty;
        var requestUrl = HttpMethods.IsGet(context.Request.Method) ? baseUrl + path + context.Request.QueryString : baseUrl + path;
        var owner = ClientId(context);
        var kickoff = context.RequestServices.GetRequiredService<ExportKickoff>();
        var result = await kickoff.StartAsync(request, "default", owner, requestUrl, baseUrl, ct);
        var options = context.RequestServices.GetRequiredService<IOptions<ExportOptions>>().Value;
        switch (result.Status)
        {
            case KickoffStatus.GroupNotFound:
                throw new FhirOperationException(404, $"Group/{groupId} does not exist (or is deleted), so it cannot be exported.", OperationOutcome.IssueType.NotFound);
            case KickoffStatus.ClientLimitReached or KickoffStatus.TenantLimitReached:
                throw new FhirOperationException(429, result.Status == KickoffStatus.ClientLimitReached
                    ? $"This client already has {options.MaxActivePerClient} exports accepted or running; wait for one to finish (or cancel one with DELETE on its status URL) and try again."
                    : $"This tenant already has {options.MaxActivePerTenant} exports accepted or running; try again later.",
                    OperationOutcome.IssueType.Throttled)
                {
                    Headers = { ["Retry-After"] = (options.RetryAfterSeconds * 15).ToString(CultureInfo.InvariantCulture) },
                };
        }

        context.Response.StatusCode = 202;
        context.Response.Headers.ContentLocation = $"{baseUrl}/{StatusSegment}/{result.Job!.Id}";
        var notes = new List<string> { $"The export was accepted; poll {context.Response.Headers.ContentLocation} for its status." };
        notes.AddRange(request.Ignored.Select(i => "Ignored: " + i));
        await WriteOutcomeBodyAsync(context, OperationOutcomes.Information(notes), ct);
    }

    private static async Task StatusAsync(HttpContext context, string jobId)
    {
        var ct = context.RequestAborted;
        var jobs = context.RequestServices.GetRequiredService<IExportJobStore>();
        var job = await FindLiveJobAsync(context, jobs, jobId);
        var options = context.RequestServices.GetRequiredService<IOptions<ExportOptions>>().Value;
        switch (job.Status)
        {
            case ExportJobStatus.Accepted or ExportJobStatus.Running:
                var progress = await jobs.GetProgressAsync(jobId, ct);
                context.Response.StatusCode = 202;
                context.Response.Headers.RetryAfter = options.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
                context.Response.Headers["X-Progress"] = job.Status == ExportJobStatus.Accepted
                    ? "planning"
                    : $"{progress.Percent}% complete ({progress.PartitionsDone} of {progress.Partitions} partitions)";
                return;
            case ExportJobStatus.Failed:
                throw new FhirOperationException(500, "The export failed: " + (job.Error ?? "no reason was recorded."), OperationOutcome.IssueType.Exception);
        }

        var files = await jobs.GetFilesAsync(jobId, ct);
        var fileStore = context.RequestServices.GetRequiredService<IExportFileStore>();
        var direct = options.DirectDownloadUrls && fileStore.CanPresign;
        // Files served by the Api are admitted exactly as $export is (the same token, when auth is configured);
        // presigned URLs need none.
        var requiresToken = !direct;
        var baseUrl = FhirHttp.BaseUrl(context);
        async Task<string> UrlAsync(ExportFile file) => direct
            ? (await fileStore.GetPresignedUrlAsync(jobId, file.FileName, options.PresignedUrlLifetime, ct)).AbsoluteUri
            : $"{baseUrl}/{FileSegment}/{jobId}/{Uri.EscapeDataString(file.FileName)}";

        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/json; charset=utf-8";
        context.Response.Headers.Expires = job.ExpiresAt?.ToString("R", CultureInfo.InvariantCulture);
        await using var writer = new Utf8JsonWriter(context.Response.Body, new JsonWriterOptions { Indented = true });
        writer.WriteStartObject();
        writer.WriteString("transactionTime", FormatInstant(job.TransactionTime));
        writer.WriteString("request", job.RequestUrl);
        writer.WriteBoolean("requiresAccessToken", requiresToken);
        writer.WriteStartArray("output");
        foreach (var file in files.Where(f => f.Kind == ExportFileKinds.Output))
        {
            writer.WriteStartObject();
            writer.WriteString("type", file.Type);
            writer.WriteString("url", await UrlAsync(file));
            writer.WriteNumber("count", file.ResourceCount);
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteStartArray("deleted");
        writer.WriteEndArray();
        writer.WriteStartArray("error");
        foreach (var file in files.Where(f => f.Kind == ExportFileKinds.Error))
        {
            writer.WriteStartObject();
            writer.WriteString("type", "OperationOutcome");
            writer.WriteString("url", await UrlAsync(file));
            writer.WriteNumber("count", file.ResourceCount);
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
        await writer.FlushAsync(ct);
    }

    private static async Task CancelAsync(HttpContext context, string jobId)
    {
        var ct = context.RequestAborted;
        var jobs = context.RequestServices.GetRequiredService<IExportJobStore>();
        await FindLiveJobAsync(context, jobs, jobId);
        if (!await jobs.CancelJobAsync(jobId, ct))
        {
            throw NotFound(jobId);
        }

        ExportTelemetry.JobsFinished.Add(1, new KeyValuePair<string, object?>("outcome", "cancelled"));
        // Remove what is there now; the supervisor sweeps again once running partitions have stopped.
        try
        {
            await context.RequestServices.GetRequiredService<IExportFileStore>().DeleteJobAsync(jobId, ct);
        }
        catch (IOException)
        {
            // Partitions of the cancelled export may still be writing until their next heartbeat; the supervisor
            // deletes the files once no lease is live. The cancel itself is done.
        }

        context.Response.StatusCode = 202;
        await WriteOutcomeBodyAsync(context, OperationOutcomes.Information([$"Export {jobId} was cancelled; its files are being deleted."]), ct);
    }

    private static async Task DownloadAsync(HttpContext context, string jobId, string fileName)
    {
        var ct = context.RequestAborted;
        var jobs = context.RequestServices.GetRequiredService<IExportJobStore>();
        var job = await FindLiveJobAsync(context, jobs, jobId);
        if (job.Status != ExportJobStatus.Completed || await jobs.GetFileAsync(jobId, fileName, ct) is null)
        {
            throw new FhirOperationException(404, $"Export {jobId} has no file '{fileName}' (files are served once the export is complete; the manifest lists them).", OperationOutcome.IssueType.NotFound);
        }

        var fileStore = context.RequestServices.GetRequiredService<IExportFileStore>();
        if (job.ExpiresAt is { } expires)
        {
            context.Response.Headers.Expires = expires.ToString("R", CultureInfo.InvariantCulture);
        }

        if (fileStore.GetLocalPath(jobId, fileName) is not { } path)
        {
            var options = context.RequestServices.GetRequiredService<IOptions<ExportOptions>>().Value;
            var url = await fileStore.GetPresignedUrlAsync(jobId, fileName, options.PresignedUrlLifetime, ct);
            context.Response.Headers.CacheControl = "no-store";
            context.Response.Redirect(url.AbsoluteUri, permanent: false);
            return;
        }

        if (!File.Exists(path))
        {
            throw new FhirOperationException(404, $"The file '{fileName}' of export {jobId} is no longer stored.", OperationOutcome.IssueType.NotFound);
        }

        var gzip = !context.Request.Headers.Range.Any() &&
            context.Request.Headers.AcceptEncoding.Any(v => v is not null && v.Contains("gzip", StringComparison.OrdinalIgnoreCase));
        if (!gzip)
        {
            await Results.File(path, Ndjson, enableRangeProcessing: true).ExecuteAsync(context);
            return;
        }

        context.Response.StatusCode = 200;
        context.Response.ContentType = Ndjson;
        context.Response.Headers.ContentEncoding = "gzip";
        context.Response.Headers.Vary = "Accept-Encoding";
        await using var source = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        await using var compressed = new GZipStream(context.Response.Body, CompressionLevel.Fastest, leaveOpen: true);
        await source.CopyToAsync(compressed, 1 << 16, ct);
    }

    /// <summary>The job, or a 404 OperationOutcome when it is unknown, cancelled or expired.</summary>
    private static async Task<ExportJob> FindLiveJobAsync(HttpContext context, IExportJobStore jobs, string jobId)
    {
        var job = await jobs.GetJobAsync(jobId, context.RequestAborted);
        var now = context.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow();
        if (job is null || job.Status == ExportJobStatus.Cancelled || (job.ExpiresAt is { } expires && expires <= now))
        {
            throw NotFound(jobId);
        }

        return job;
    }

    private static FhirOperationException NotFound(string jobId) =>
        new(404, $"There is no export '{jobId}': it never existed, was cancelled, or expired and was deleted.", OperationOutcome.IssueType.NotFound);

    /// <summary>The client the export belongs to: the token's client_id when authentication is on.</summary>
    private static string ClientId(HttpContext context) =>
        context.User.FindFirst("client_id")?.Value ?? context.User.FindFirst("sub")?.Value ?? "anonymous";

    private static string FormatInstant(DateTimeOffset value) =>
        value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);

    private static async Task WriteOutcomeBodyAsync(HttpContext context, string body, CancellationToken cancellationToken)
    {
        context.Response.ContentType = FhirHttp.FhirJson + "; charset=utf-8";
        await context.Response.WriteAsync(body, cancellationToken);
    }

    /// <summary>The kick-off parameters of a POSTed Parameters resource, as name/value text pairs.</summary>
    private static IEnumerable<KeyValuePair<string, string>> ReadParametersBody(string body)
    {
        Resource resource;
        try
        {
            resource = FhirJson.ParseResource(System.Text.Encoding.UTF8.GetBytes(body));
        }
        catch (FhirParseException ex)
        {
            throw new FhirOperationException(400, "The $export body is not a valid Parameters resource: " + ex.Message, OperationOutcome.IssueType.Invalid);
        }

        if (resource is not Parameters parameters)
        {
            throw new FhirOperationException(400, $"The $export body must be a Parameters resource, not {resource.TypeName}.", OperationOutcome.IssueType.Invalid);
        }

        foreach (var parameter in parameters.Parameter)
        {
            var value = parameter.Value switch
            {
                null => null,
                ResourceReference reference => reference.Reference,
                Instant instant => instant.Value?.ToString("o", CultureInfo.InvariantCulture) ?? instant.ToString(),
                PrimitiveType primitive => primitive.ToString(),
                _ => null,
            };
            if (value is null)
            {
                throw new FhirOperationException(400, $"The $export parameter '{parameter.Name}' has no usable value[x].", OperationOutcome.IssueType.Invalid);
            }

            yield return new KeyValuePair<string, string>(parameter.Name ?? string.Empty, value);
        }
    }
}
