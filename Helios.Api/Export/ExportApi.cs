using System.Globalization;
using System.Text.Json;
using Helios.Api.Auth;
using Helios.Api.Fhir;
using Helios.Export.Diagnostics;
using Helios.Export.Engine;
using Helios.Export.Jobs;
using Helios.Export.Requests;
using Hl7.Fhir.Model;

namespace Helios.Api.Export;

/// <summary>
/// FHIR Bulk Data Access <c>$export</c>: kick-off at system, Patient and Group level (GET, or POST of a Parameters
/// resource), status polling, cancel, and file downloads. Handlers talk to the export ports only; the topology
/// decides what is behind them. The two route groups are where authorization attaches.
/// </summary>
public static class ExportApi
{
    private const string Ndjson = "application/fhir+ndjson";
    private const string ManifestContentType = "application/json; charset=utf-8";

    public static IEndpointRouteBuilder MapExportApi(this IEndpointRouteBuilder app)
    {
        var kickoff = app.MapGroup(string.Empty).WithTags("Bulk Data kick-off");
        kickoff.MapGet("/$export", SystemKickoffAsync);
        kickoff.MapPost("/$export", SystemKickoffAsync);
        kickoff.MapGet("/Patient/$export", PatientKickoffAsync);
        kickoff.MapPost("/Patient/$export", PatientKickoffAsync);
        kickoff.MapGet("/Group/{id}/$export", GroupKickoffAsync);
        kickoff.MapPost("/Group/{id}/$export", GroupKickoffAsync);

        var jobs = app.MapGroup(string.Empty).WithTags("Bulk Data jobs");
        jobs.MapGet($"/{ExportRoutes.StatusSegment}/{{jobId}}", StatusAsync);
        jobs.MapDelete($"/{ExportRoutes.StatusSegment}/{{jobId}}", CancelAsync);
        jobs.MapGet($"/{ExportRoutes.FileSegment}/{{jobId}}/{{fileName}}", DownloadAsync);
        return app;
    }

    public static Task<FhirResult> SystemKickoffAsync(HttpContext context, [AsParameters] ExportEndpointServices services, CancellationToken cancellationToken) =>
        KickoffAsync(context, ExportLevel.System, null, services, cancellationToken);

    public static Task<FhirResult> PatientKickoffAsync(HttpContext context, [AsParameters] ExportEndpointServices services, CancellationToken cancellationToken) =>
        KickoffAsync(context, ExportLevel.Patient, null, services, cancellationToken);

    public static Task<FhirResult> GroupKickoffAsync(string id, HttpContext context, [AsParameters] ExportEndpointServices services, CancellationToken cancellationToken) =>
        KickoffAsync(context, ExportLevel.Group, id, services, cancellationToken);

    private static async Task<FhirResult> KickoffAsync(HttpContext context, ExportLevel level, string? groupId, ExportEndpointServices services, CancellationToken cancellationToken)
    {
        try
        {
            return await KickoffCoreAsync(context, level, groupId, services, cancellationToken);
        }
        catch (FhirOperationException ex)
        {
            var reason = ex.Status switch
            {
                429 => "too_many",
                404 or 410 => "not_found",
                401 or 403 => "forbidden",
                _ => "invalid",
            };
            ExportTelemetry.KickoffsRefused.Add(1, new KeyValuePair<string, object?>("reason", reason), new KeyValuePair<string, object?>("level", level.ToString()));
            throw;
        }
        catch (ExportRequestException)
        {
            ExportTelemetry.KickoffsRefused.Add(1, new KeyValuePair<string, object?>("reason", "invalid"), new KeyValuePair<string, object?>("level", level.ToString()));
            throw;
        }
    }

    private static async Task<FhirResult> KickoffCoreAsync(HttpContext context, ExportLevel level, string? groupId, ExportEndpointServices services, CancellationToken cancellationToken)
    {
        var request = context.Request;
        if (!FhirRequestReader.PreferHas(request, "respond-async"))
        {
            throw new FhirOperationException(400, "$export runs asynchronously: send the header Prefer: respond-async.", OperationOutcome.IssueType.Required);
        }

        var accept = request.Headers.Accept.ToString();
        if (accept.Length > 0 && !accept.Contains("json", StringComparison.OrdinalIgnoreCase) && !accept.Contains("*/*", StringComparison.Ordinal))
        {
            throw new FhirOperationException(400, $"Accept '{accept}' is not supported for $export: send Accept: application/fhir+json.", OperationOutcome.IssueType.NotSupported);
        }

        var parameters = FhirRequestReader.QueryPairs(request);
        if (HttpMethods.IsPost(request.Method))
        {
            parameters.AddRange(ExportParametersBody.Read(await services.Reader.ReadBodyAsync(request, cancellationToken, allowEmpty: true)));
        }

        var lenient = FhirRequestReader.PreferHas(request, "handling=lenient");
        var exportRequest = Authorize(ExportRequestParser.Parse(level, groupId, parameters, lenient, services.Registry.ResourceTypeSet, services.Registry.PatientCompartmentTypeSet, services.SearchParser), services);
        var baseUrl = services.Reader.BaseUrl(request);
        var path = request.Path.Value ?? string.Empty;
        var requestUrl = HttpMethods.IsGet(request.Method) ? baseUrl + path + request.QueryString : baseUrl + path;
        var job = await services.Kickoff.StartAsync(exportRequest, "default", services.Access.ClientId, requestUrl, baseUrl, cancellationToken);

        var statusUrl = ExportRoutes.StatusUrl(baseUrl, job.Id);
        var notes = new List<string> { $"The export was accepted; poll {statusUrl} for its status." };
        notes.AddRange(exportRequest.Ignored.Select(i => "Ignored: " + i));
        return new FhirResult(new FhirResponse(202, OperationOutcomes.Information(notes))) { Headers = { ["Content-Location"] = statusUrl } };
    }

    public static async Task<IResult> StatusAsync(string jobId, HttpRequest request, HttpResponse response, [AsParameters] ExportEndpointServices services, CancellationToken cancellationToken)
    {
        // Polls share one read of the job per moment (ExportStatusCache); who may see it is checked on every poll.
        var status = await services.StatusCache.GetAsync(jobId, cancellationToken);
        var job = LiveJob(jobId, status.Job, services);
        var options = services.Options.Value;
        var paged = job.Request.AllowPartialManifests;
        var page = ManifestPage(request, job);
        switch (job.Status)
        {
            case ExportJobStatus.Accepted or ExportJobStatus.Running:
                var retryAfter = options.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
                var progressText = status.Progress is { } progress
                    ? $"{progress.Percent}% complete ({progress.PartitionsDone} of {progress.Partitions} partitions)"
                    : "planning";
                if (paged && job.Status == ExportJobStatus.Running && await services.Jobs.EnsureManifestPageAsync(jobId, page, cancellationToken))
                {
                    // allowPartialManifests: the page of files committed so far (fixed once served), while the rest runs.
                    response.Headers.RetryAfter = retryAfter;
                    response.Headers["X-Progress"] = progressText;
                    return await ManifestAsync(job, page, StatusCodes.Status202Accepted, request, response, services, cancellationToken);
                }

                if (options.PollThrottleFraction > 0 &&
                    !await services.Jobs.TryRecordPollAsync(jobId, TimeSpan.FromSeconds(options.RetryAfterSeconds * options.PollThrottleFraction), cancellationToken))
                {
                    return new FhirResult(new FhirResponse(429, OperationOutcomes.Error(
                        $"Export {jobId} was polled again before the Retry-After of {retryAfter} s given with the previous answer had passed; wait that long between polls.",
                        OperationOutcome.IssueType.Throttled)))
                    {
                        Headers = { ["Retry-After"] = retryAfter },
                    };
                }

                return new FhirResult(new FhirResponse(202, null))
                {
                    Headers =
                    {
                        ["Retry-After"] = retryAfter,
                        ["X-Progress"] = progressText,
                    },
                };
            case ExportJobStatus.Failed:
                throw new FhirOperationException(500, "The export failed: " + (job.Error ?? "no reason was recorded."), OperationOutcome.IssueType.Exception);
        }

        if (paged && !await services.Jobs.EnsureManifestPageAsync(jobId, page, cancellationToken) && page > 1)
        {
            throw new FhirOperationException(404, $"Export {jobId} has no manifest page {page}: follow the manifest's next link.", OperationOutcome.IssueType.NotFound);
        }

        if (paged)
        {
            return await ManifestAsync(job, page, StatusCodes.Status200OK, request, response, services, cancellationToken);
        }

        return await CompletedManifestAsync(job, request, response, services, cancellationToken);
    }

    /// <summary>A completed export's whole manifest. It does not change: built once per base URL, then served as it
    /// was (<see cref="ExportStatusCache"/>).</summary>
    private static async Task<IResult> CompletedManifestAsync(
        ExportJob job, HttpRequest request, HttpResponse response, ExportEndpointServices services, CancellationToken cancellationToken)
    {
        SetExpires(response, job);
        var direct = DirectUrls(services);
        var cacheKey = services.Reader.BaseUrl(request) + (direct ? " direct" : string.Empty);
        if (services.StatusCache.GetManifest(job.Id, cacheKey) is { } cached)
        {
            return TypedResults.Bytes(cached, ManifestContentType);
        }

        var json = JsonSerializer.SerializeToUtf8Bytes(
            await BuildManifestAsync(job, null, request, services, cancellationToken), ExportManifestJsonContext.Default.ExportManifest);
        var validUntil = job.ExpiresAt ?? DateTimeOffset.MaxValue;
        if (direct)
        {
            // Presigned URLs are handed out with at least half their lifetime left.
            var presignedValid = services.TimeProvider.GetUtcNow() + (services.Options.Value.PresignedUrlLifetime / 2);
            validUntil = presignedValid < validUntil ? presignedValid : validUntil;
        }

        services.StatusCache.SetManifest(job.Id, cacheKey, json, validUntil);
        return TypedResults.Bytes(json, ManifestContentType);
    }

    private static void SetExpires(HttpResponse response, ExportJob job) =>
        response.Headers.Expires = job.ExpiresAt?.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>The manifest page asked for (<c>?page=n</c>, 1 when absent); only exports with
    /// <c>allowPartialManifests</c> have pages beyond the first.</summary>
    private static int ManifestPage(HttpRequest request, ExportJob job)
    {
        if (!request.Query.TryGetValue("page", out var text))
        {
            return 1;
        }

        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var page) || page < 1 || (page > 1 && !job.Request.AllowPartialManifests))
        {
            throw new FhirOperationException(404, $"Export {job.Id} has no manifest page '{text}': follow the manifest's next link.", OperationOutcome.IssueType.NotFound);
        }

        return page;
    }

    /// <summary>The manifest: every file, or (<paramref name="page"/> given) the output and deleted files of that page,
    /// with a next link when a later page exists, which is created here when new files were committed.</summary>
    private static async Task<IResult> ManifestAsync(
        ExportJob job, int page, int statusCode, HttpRequest request, HttpResponse response, ExportEndpointServices services, CancellationToken cancellationToken)
    {
        var manifest = await BuildManifestAsync(job, page, request, services, cancellationToken);
        SetExpires(response, job);
        return TypedResults.Json(manifest, ExportManifestJsonContext.Default.ExportManifest, ManifestContentType, statusCode);
    }

    /// <summary>Files served by the Api are admitted exactly as $export is (the same token, when auth is configured);
    /// presigned URLs need none.</summary>
    private static bool DirectUrls(ExportEndpointServices services) => services.Options.Value.DirectDownloadUrls && services.Files.CanPresign;

    private static async Task<ExportManifest> BuildManifestAsync(
        ExportJob job, int? page, HttpRequest request, ExportEndpointServices services, CancellationToken cancellationToken)
    {
        var options = services.Options.Value;
        var jobId = job.Id;
        var files = await services.Jobs.GetFilesAsync(jobId, cancellationToken);
        var direct = DirectUrls(services);
        var baseUrl = services.Reader.BaseUrl(request);
        async Task<List<ExportManifestOutput>> OutputsAsync(string kind)
        {
            var outputs = new List<ExportManifestOutput>();
            foreach (var file in files.Where(f => f.Kind == kind && (page is null || kind == ExportFileKinds.Error || f.ManifestPage == page)))
            {
                var url = direct
                    ? (await services.Files.GetPresignedUrlAsync(jobId, file.FileName, options.PresignedUrlLifetime, cancellationToken)).AbsoluteUri
                    : ExportRoutes.FileUrl(baseUrl, jobId, file.FileName);
                var type = kind switch
                {
                    ExportFileKinds.Error => "OperationOutcome",
                    ExportFileKinds.Deleted => "Bundle",
                    // Organized output files mix types: the IG says type SHALL NOT be given then.
                    _ => job.Request.OrganizeOutputBy is null ? file.Type : null,
                };
                outputs.Add(new ExportManifestOutput(type, url, file.ResourceCount));
            }

            return outputs;
        }

        IReadOnlyList<ExportManifestLink>? link = page is { } current && await services.Jobs.EnsureManifestPageAsync(jobId, current + 1, cancellationToken)
            ? [new ExportManifestLink("next", ExportRoutes.StatusUrl(baseUrl, jobId) + "?page=" + (current + 1).ToString(CultureInfo.InvariantCulture))]
            : null;
        return new ExportManifest(
            FormatInstant(job.TransactionTime), job.RequestUrl, RequiresAccessToken: !direct,
            await OutputsAsync(ExportFileKinds.Output), await OutputsAsync(ExportFileKinds.Deleted), await OutputsAsync(ExportFileKinds.Error))
        {
            Link = link,
            OutputOrganizedBy = job.Request.OrganizeOutputBy,
        };
    }

    public static async Task<FhirResult> CancelAsync(string jobId, [AsParameters] ExportEndpointServices services, CancellationToken cancellationToken)
    {
        await FindLiveJobAsync(jobId, services, cancellationToken);
        var cancelled = await services.Jobs.CancelJobAsync(jobId, cancellationToken);
        services.StatusCache.Forget(jobId);
        if (!cancelled)
        {
            throw new ExportJobNotFoundException(jobId);
        }

        ExportTelemetry.JobsFinished.Add(1, new KeyValuePair<string, object?>("outcome", "cancelled"));
        // Remove what is there now; the supervisor sweeps again once running partitions have stopped.
        try
        {
            await services.Files.DeleteJobAsync(jobId, cancellationToken);
        }
        catch (IOException)
        {
            // Partitions of the cancelled export may still be writing until their next heartbeat; the supervisor
            // deletes the files once no lease is live. The cancel itself is done.
        }

        return new FhirResult(new FhirResponse(202, OperationOutcomes.Information([$"Export {jobId} was cancelled; its files are being deleted."])));
    }

    public static async Task<IResult> DownloadAsync(
        string jobId, string fileName, HttpRequest request, HttpResponse response, [AsParameters] ExportEndpointServices services, CancellationToken cancellationToken)
    {
        var job = await FindLiveJobAsync(jobId, services, cancellationToken);
        var file = await services.Jobs.GetFileAsync(jobId, fileName, cancellationToken);
        // Files are served once the export is complete, or once a partial manifest (allowPartialManifests) listed them.
        var listed = job.Status == ExportJobStatus.Completed || (job.Status == ExportJobStatus.Running && file is { ManifestPage: not null });
        if (file is null || !listed)
        {
            throw new FhirOperationException(404, $"Export {jobId} has no file '{fileName}' (files are served once a manifest lists them).", OperationOutcome.IssueType.NotFound);
        }

        if (job.ExpiresAt is { } expires)
        {
            response.Headers.Expires = expires.ToString("R", CultureInfo.InvariantCulture);
        }

        if (services.Files.GetLocalPath(jobId, fileName) is not { } path)
        {
            var url = await services.Files.GetPresignedUrlAsync(jobId, fileName, services.Options.Value.PresignedUrlLifetime, cancellationToken);
            response.Headers.CacheControl = "no-store";
            return TypedResults.Redirect(url.AbsoluteUri);
        }

        if (!File.Exists(path))
        {
            throw new FhirOperationException(404, $"The file '{fileName}' of export {jobId} is no longer stored.", OperationOutcome.IssueType.NotFound);
        }

        // An unsatisfiable Range gets its 416 here, with an OperationOutcome (the file result would send an empty body).
        if (Microsoft.Net.Http.Headers.RangeHeaderValue.TryParse(request.Headers.Range.ToString(), out var range)
            && string.Equals(range.Unit.Value, "bytes", StringComparison.OrdinalIgnoreCase) && range.Ranges.Count > 0)
        {
            var length = new FileInfo(path).Length;
            if (range.Ranges.All(r => r.From is { } from ? from >= length || (r.To is { } to && to < from) : r.To is not > 0 || length == 0))
            {
                throw new FhirOperationException(416, $"The Range '{request.Headers.Range}' selects no byte of '{fileName}', which is {length} bytes long.", OperationOutcome.IssueType.Invalid)
                {
                    Headers = { ["Content-Range"] = $"bytes */{length}" },
                };
            }
        }

        var gzip = !request.Headers.Range.Any() &&
            request.Headers.AcceptEncoding.Any(v => v is not null && v.Contains("gzip", StringComparison.OrdinalIgnoreCase));
        return gzip ? new GzipFileResult(path, Ndjson) : TypedResults.PhysicalFile(path, Ndjson, enableRangeProcessing: true);
    }

    /// <summary>The job, or <see cref="ExportJobNotFoundException"/> (404) when it is unknown, cancelled, expired, or
    /// another client's (so a job id tells nobody else anything).</summary>
    private static async Task<ExportJob> FindLiveJobAsync(string jobId, ExportEndpointServices services, CancellationToken cancellationToken) =>
        LiveJob(jobId, await services.Jobs.GetJobAsync(jobId, cancellationToken), services);

    private static ExportJob LiveJob(string jobId, ExportJob? job, ExportEndpointServices services)
    {
        var now = services.TimeProvider.GetUtcNow();
        if (job is null || job.Status == ExportJobStatus.Cancelled || (job.ExpiresAt is { } expires && expires <= now) ||
            (!services.Access.IsUnrestricted && !string.Equals(job.Owner, services.Access.ClientId, StringComparison.Ordinal)))
        {
            throw new ExportJobNotFoundException(jobId);
        }

        return job;
    }

    /// <summary>
    /// An export needs read on every type it returns: each <c>_type</c> asked for must be granted (403 naming the
    /// type otherwise); without <c>_type</c> the export is narrowed to the granted types, and the manifest's error file
    /// says so. A Group export also needs read on Group (Bulk Data STU3).
    /// </summary>
    private static ExportRequest Authorize(ExportRequest request, ExportEndpointServices services)
    {
        var access = services.Access;
        if (access.IsUnrestricted)
        {
            return request;
        }

        if (request.Level == ExportLevel.Group)
        {
            access.Demand("Group", SmartPermission.Read, "A Group-level $export");
        }

        if (request.Types is { } types)
        {
            foreach (var type in types)
            {
                access.Demand(type, SmartPermission.Read, "$export");
            }

            return request;
        }

        if (access.Allows("*", SmartPermission.Read))
        {
            return request;
        }

        var candidates = request.Level == ExportLevel.System ? services.Registry.ResourceTypeSet : services.Registry.PatientCompartmentTypeSet;
        var granted = candidates.Where(t => access.Allows(t, SmartPermission.Read)).Order(StringComparer.Ordinal).ToList();
        if (granted.Count == 0)
        {
            access.Demand("*", SmartPermission.Read, "$export");
        }

        return request with
        {
            Types = granted,
            Ignored = [.. request.Ignored, $"The access token grants read on {string.Join(", ", granted)} only, so the export covers those types and no others."],
        };
    }

    private static string FormatInstant(DateTimeOffset value) =>
        value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);
}
