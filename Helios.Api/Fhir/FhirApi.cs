using Hl7.Fhir.Model;

namespace Helios.Api.Fhir;

/// <summary>The FHIR R4 REST routes (JSON only).</summary>
public static class FhirApi
{
    public static IEndpointRouteBuilder MapFhirApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/metadata", (HttpContext context, CapabilityStatementBuilder builder) =>
            FhirHttp.WriteAsync(context, new FhirResponse(200, builder.Build(FhirHttp.BaseUrl(context))), context.RequestAborted));

        app.MapPost("/", BundleAsync);
        app.MapGet("/_history", (HttpContext context, FhirService fhir) =>
            Run(context, ct => fhir.HistoryAsync(null, null, FhirHttp.QueryPairs(context), FhirHttp.BaseUrl(context), ct)));

        app.MapGet("/{type}", (HttpContext context, FhirService fhir, string type) =>
            Run(context, ct => fhir.SearchAsync(type, FhirHttp.QueryPairs(context), FhirHttp.IsStrict(context), FhirHttp.BaseUrl(context), null, ct)));
        app.MapPost("/{type}/_search", SearchPostAsync);
        app.MapPost("/{type}", CreateAsync);
        app.MapGet("/{type}/_history", (HttpContext context, FhirService fhir, string type) =>
            Run(context, ct => fhir.HistoryAsync(type, null, FhirHttp.QueryPairs(context), FhirHttp.BaseUrl(context), ct)));

        app.MapGet("/{type}/{id}", (HttpContext context, FhirService fhir, string type, string id) =>
            Run(context, ct => { RejectOperation(id); return fhir.ReadAsync(type, id, ct); }));
        app.MapPut("/{type}/{id}", UpdateAsync);
        app.MapDelete("/{type}/{id}", (HttpContext context, FhirService fhir, string type, string id) =>
            Run(context, ct => fhir.DeleteAsync(type, id, context.Request.Headers.IfMatch.FirstOrDefault(), ct)));
        app.MapGet("/{type}/{id}/_history", (HttpContext context, FhirService fhir, string type, string id) =>
            Run(context, ct => fhir.HistoryAsync(type, id, FhirHttp.QueryPairs(context), FhirHttp.BaseUrl(context), ct)));
        app.MapGet("/{type}/{id}/_history/{vid}", (HttpContext context, FhirService fhir, string type, string id, string vid) =>
            Run(context, ct => fhir.VReadAsync(type, id, vid, ct)));
        app.MapGet("/{type}/{id}/{compartmentType}", CompartmentAsync);
        return app;
    }

    private static async System.Threading.Tasks.Task Run(HttpContext context, Func<CancellationToken, Task<FhirResponse>> action)
    {
        var response = await action(context.RequestAborted);
        await FhirHttp.WriteAsync(context, response, context.RequestAborted);
    }

    private static void RejectOperation(string segment)
    {
        if (segment.StartsWith('$'))
        {
            throw new FhirOperationException(400, $"The operation {segment} is not supported here; /metadata lists the supported operations.", OperationOutcome.IssueType.NotSupported);
        }
    }

    private static async System.Threading.Tasks.Task CreateAsync(HttpContext context, FhirService fhir, string type)
    {
        var ct = context.RequestAborted;
        RejectOperation(type);
        fhir.EnsureType(type);
        var resource = FhirService.ParseBody(await FhirHttp.ReadBodyAsync(context, ct), type);
        var response = await fhir.CreateAsync(resource, context.Request.Headers["If-None-Exist"].FirstOrDefault(), FhirHttp.BaseUrl(context), ct);
        await FhirHttp.WriteAsync(context, response, ct);
    }

    private static async System.Threading.Tasks.Task UpdateAsync(HttpContext context, FhirService fhir, string type, string id)
    {
        var ct = context.RequestAborted;
        fhir.EnsureType(type);
        var resource = FhirService.ParseBody(await FhirHttp.ReadBodyAsync(context, ct), type);
        var response = await fhir.UpdateAsync(type, id, resource, context.Request.Headers.IfMatch.FirstOrDefault(), FhirHttp.BaseUrl(context), ct);
        await FhirHttp.WriteAsync(context, response, ct);
    }

    private static async System.Threading.Tasks.Task SearchPostAsync(HttpContext context, FhirService fhir, string type)
    {
        var ct = context.RequestAborted;
        var pairs = FhirHttp.QueryPairs(context);
        if (context.Request.HasFormContentType)
        {
            var form = await context.Request.ReadFormAsync(ct);
            pairs.AddRange(form.SelectMany(f => f.Value.Select(v => new KeyValuePair<string, string>(f.Key, v ?? string.Empty))));
        }
        else if (context.Request.ContentLength > 0)
        {
            throw new FhirOperationException(415, "POST [type]/_search takes application/x-www-form-urlencoded parameters.", OperationOutcome.IssueType.NotSupported);
        }

        var response = await fhir.SearchAsync(type, pairs, FhirHttp.IsStrict(context), FhirHttp.BaseUrl(context), null, ct);
        await FhirHttp.WriteAsync(context, response, ct);
    }

    private static async System.Threading.Tasks.Task CompartmentAsync(HttpContext context, FhirService fhir, string type, string id, string compartmentType)
    {
        var ct = context.RequestAborted;
        RejectOperation(compartmentType);
        if (type != "Patient")
        {
            throw new FhirOperationException(404, $"Compartment search is supported for the Patient compartment only (GET Patient/{{id}}/{{type}}), not {type}.", OperationOutcome.IssueType.NotSupported);
        }

        var response = await fhir.SearchAsync(compartmentType, FhirHttp.QueryPairs(context), FhirHttp.IsStrict(context), FhirHttp.BaseUrl(context), id, ct);
        await FhirHttp.WriteAsync(context, response, ct);
    }

    private static async System.Threading.Tasks.Task BundleAsync(HttpContext context, BundleProcessor processor)
    {
        var ct = context.RequestAborted;
        var resource = FhirService.ParseBody(await FhirHttp.ReadBodyAsync(context, ct), null);
        if (resource is not Bundle bundle)
        {
            throw new FhirOperationException(400, $"POST [base] takes a batch or transaction Bundle, not a {resource.TypeName}.", OperationOutcome.IssueType.Invalid);
        }

        var response = await processor.ProcessAsync(bundle, FhirHttp.BaseUrl(context), ct);
        await FhirHttp.WriteAsync(context, response, ct);
    }
}
