using Helios.Api.Auth;
using Hl7.Fhir.Model;

namespace Helios.Api.Fhir;

/// <summary>The FHIR R4 REST routes (JSON only): batch/transaction, history, search, and the instance interactions.
/// Each handler returns a <see cref="FhirResult"/>; every failure is an exception that
/// <see cref="OperationOutcomeExceptionHandler"/> turns into an OperationOutcome.</summary>
public static class FhirApi
{
    public static RouteGroupBuilder MapFhirApi(this IEndpointRouteBuilder app)
    {
        var fhir = app.MapGroup(string.Empty).WithTags("FHIR REST");
        fhir.MapPost("/", TransactionOrBatchAsync);
        fhir.MapGet("/_history", SystemHistoryAsync);
        fhir.MapGet("/{type}", SearchAsync);
        fhir.MapPost("/{type}/_search", SearchPostAsync);
        fhir.MapPost("/{type}", CreateAsync);
        fhir.MapGet("/{type}/_history", TypeHistoryAsync);
        fhir.MapGet("/{type}/{id}", ReadAsync);
        fhir.MapPut("/{type}/{id}", UpdateAsync);
        fhir.MapDelete("/{type}/{id}", DeleteAsync);
        fhir.MapGet("/{type}/{id}/_history", InstanceHistoryAsync);
        fhir.MapGet("/{type}/{id}/_history/{vid}", VReadAsync);
        fhir.MapGet("/{type}/{id}/{compartmentType}", CompartmentSearchAsync);
        return fhir;
    }

    public static async Task<FhirResult> SystemHistoryAsync(HttpRequest request, [AsParameters] FhirEndpointServices services, CancellationToken cancellationToken)
    {
        services.Access.Demand("*", SmartPermission.Read, "History of every type");
        return new(await services.Fhir.HistoryAsync(null, null, FhirRequestReader.QueryPairs(request), services.Reader.BaseUrl(request), cancellationToken));
    }

    public static async Task<FhirResult> TypeHistoryAsync(string type, HttpRequest request, [AsParameters] FhirEndpointServices services, CancellationToken cancellationToken)
    {
        services.Access.Demand(type, SmartPermission.Read, "History");
        return new(await services.Fhir.HistoryAsync(type, null, FhirRequestReader.QueryPairs(request), services.Reader.BaseUrl(request), cancellationToken));
    }

    public static async Task<FhirResult> InstanceHistoryAsync(string type, string id, HttpRequest request, [AsParameters] FhirEndpointServices services, CancellationToken cancellationToken)
    {
        services.Access.Demand(type, SmartPermission.Read, "History");
        return new(await services.Fhir.HistoryAsync(type, id, FhirRequestReader.QueryPairs(request), services.Reader.BaseUrl(request), cancellationToken));
    }

    public static async Task<FhirResult> SearchAsync(string type, HttpRequest request, [AsParameters] FhirEndpointServices services, CancellationToken cancellationToken)
    {
        var pairs = FhirRequestReader.QueryPairs(request);
        DemandSearch(services.Access, type, pairs);
        return new(await services.Fhir.SearchAsync(type, pairs, FhirRequestReader.IsStrict(request), services.Reader.BaseUrl(request), null, cancellationToken));
    }

    public static async Task<FhirResult> ReadAsync(string type, string id, [AsParameters] FhirEndpointServices services, CancellationToken cancellationToken)
    {
        RejectOperation(id);
        services.Access.Demand(type, SmartPermission.Read, "Read");
        return new(await services.Fhir.ReadAsync(type, id, cancellationToken));
    }

    public static async Task<FhirResult> VReadAsync(string type, string id, string vid, [AsParameters] FhirEndpointServices services, CancellationToken cancellationToken)
    {
        services.Access.Demand(type, SmartPermission.Read, "Read");
        return new(await services.Fhir.VReadAsync(type, id, vid, cancellationToken));
    }

    public static async Task<FhirResult> DeleteAsync(string type, string id, HttpRequest request, [AsParameters] FhirEndpointServices services, CancellationToken cancellationToken)
    {
        services.Access.Demand(type, SmartPermission.Delete, "Delete");
        return new(await services.Fhir.DeleteAsync(type, id, request.Headers.IfMatch.FirstOrDefault(), cancellationToken));
    }

    public static async Task<FhirResult> CreateAsync(string type, HttpRequest request, [AsParameters] FhirEndpointServices services, CancellationToken cancellationToken)
    {
        RejectOperation(type);
        services.Fhir.EnsureType(type);
        services.Access.Demand(type, SmartPermission.Create, "Create");
        var ifNoneExist = request.Headers["If-None-Exist"].FirstOrDefault();
        if (!string.IsNullOrEmpty(ifNoneExist))
        {
            services.Access.Demand(type, SmartPermission.Search, "A conditional create (If-None-Exist)");
        }

        var resource = FhirService.ParseBody(await services.Reader.ReadBodyAsync(request, cancellationToken), type);
        return new(await services.Fhir.CreateAsync(resource, ifNoneExist, services.Reader.BaseUrl(request), cancellationToken));
    }

    public static async Task<FhirResult> UpdateAsync(string type, string id, HttpRequest request, [AsParameters] FhirEndpointServices services, CancellationToken cancellationToken)
    {
        services.Fhir.EnsureType(type);
        services.Access.Demand(type, SmartPermission.Update, "Update");
        var resource = FhirService.ParseBody(await services.Reader.ReadBodyAsync(request, cancellationToken), type);
        return new(await services.Fhir.UpdateAsync(type, id, resource, request.Headers.IfMatch.FirstOrDefault(), services.Reader.BaseUrl(request), cancellationToken));
    }

    public static async Task<FhirResult> SearchPostAsync(string type, HttpRequest request, [AsParameters] FhirEndpointServices services, CancellationToken cancellationToken)
    {
        var pairs = FhirRequestReader.QueryPairs(request);
        if (request.HasFormContentType)
        {
            IFormCollection form;
            try
            {
                form = await request.ReadFormAsync(cancellationToken);
            }
            catch (InvalidDataException ex)
            {
                throw new FhirOperationException(400, $"The form body could not be read: {ex.Message}", OperationOutcome.IssueType.Invalid);
            }

            pairs.AddRange(form.SelectMany(f => f.Value.Select(v => new KeyValuePair<string, string>(f.Key, v ?? string.Empty))));
        }
        else if (request.ContentLength > 0)
        {
            throw new FhirOperationException(415, "POST [type]/_search takes application/x-www-form-urlencoded parameters.", OperationOutcome.IssueType.NotSupported);
        }

        DemandSearch(services.Access, type, pairs);
        return new(await services.Fhir.SearchAsync(type, pairs, FhirRequestReader.IsStrict(request), services.Reader.BaseUrl(request), null, cancellationToken));
    }

    public static async Task<FhirResult> CompartmentSearchAsync(
        string type, string id, string compartmentType, HttpRequest request, [AsParameters] FhirEndpointServices services, CancellationToken cancellationToken)
    {
        RejectOperation(compartmentType);
        if (type != "Patient")
        {
            throw new FhirOperationException(404, $"Compartment search is supported for the Patient compartment only (GET Patient/{{id}}/{{type}}), not {type}.", OperationOutcome.IssueType.NotSupported);
        }

        var pairs = FhirRequestReader.QueryPairs(request);
        DemandSearch(services.Access, compartmentType, pairs);
        return new(await services.Fhir.SearchAsync(compartmentType, pairs, FhirRequestReader.IsStrict(request), services.Reader.BaseUrl(request), id, cancellationToken));
    }

    public static async Task<FhirResult> TransactionOrBatchAsync(HttpRequest request, [AsParameters] FhirEndpointServices services, CancellationToken cancellationToken)
    {
        var resource = FhirService.ParseBody(await services.Reader.ReadBodyAsync(request, cancellationToken), null);
        if (resource is not Bundle bundle)
        {
            throw new FhirOperationException(400, $"POST [base] takes a batch or transaction Bundle, not a {resource.TypeName}.", OperationOutcome.IssueType.Invalid);
        }

        return new(await services.Bundles.ProcessAsync(bundle, services.Reader.BaseUrl(request), services.Access, cancellationToken));
    }

    /// <summary>404 for any route no endpoint serves.</summary>
    public static FhirResult NoEndpoint(HttpRequest request) =>
        FhirResult.Outcome(404, OperationOutcomes.Error($"No FHIR endpoint at {request.Method} {request.Path}; see /metadata.", OperationOutcome.IssueType.NotFound));

    /// <summary>A search needs <c>s</c> on its type, and every type its <c>_include</c>/<c>_revinclude</c> can return
    /// needs <c>r</c> (an include without a target type could return any type).</summary>
    internal static void DemandSearch(SmartAccess access, string type, IEnumerable<KeyValuePair<string, string>> parameters)
    {
        access.Demand(type, SmartPermission.Search, "Search");
        foreach (var (name, value) in parameters)
        {
            var parts = value.Split(':');
            if (name.StartsWith("_include", StringComparison.Ordinal))
            {
                access.Demand(parts.Length >= 3 && parts[2].Length > 0 ? parts[2] : "*", SmartPermission.Read, "_include");
            }
            else if (name.StartsWith("_revinclude", StringComparison.Ordinal))
            {
                access.Demand(parts[0].Length > 0 ? parts[0] : "*", SmartPermission.Read, "_revinclude");
            }
        }
    }

    private static void RejectOperation(string segment)
    {
        if (segment.StartsWith('$'))
        {
            throw new FhirOperationException(400, $"The operation {segment} is not supported here; /metadata lists the supported operations.", OperationOutcome.IssueType.NotSupported);
        }
    }
}
