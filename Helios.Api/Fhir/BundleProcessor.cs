using Helios.Storage;
using Helios.Storage.Search;
using Helios.Api.Auth;
using Hl7.Fhir.Model;

namespace Helios.Api.Fhir;

/// <summary>
/// <c>POST [base]</c> with a batch or transaction Bundle. A transaction resolves every conditional (ifNoneExist,
/// conditional update/delete URLs, conditional references) and every <c>urn:uuid</c> fullUrl first, then applies
/// all writes in one atomic store call: any failure writes nothing and names the failing entry.
/// </summary>
public sealed class BundleProcessor(FhirService fhir, SearchQueryParser parser, InMemorySearchMatcher matcher, TimeProvider timeProvider)
{
    public async Task<FhirResponse> ProcessAsync(Bundle bundle, string baseUrl, SmartAccess access, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(bundle);
        ArgumentNullException.ThrowIfNull(access);
        return bundle.Type switch
        {
            Bundle.BundleType.Transaction => await TransactionAsync(bundle, baseUrl, access, cancellationToken),
            Bundle.BundleType.Batch => await BatchAsync(bundle, baseUrl, access, cancellationToken),
            _ => throw new FhirOperationException(400, $"POST [base] takes a Bundle of type batch or transaction, not {bundle.Type?.ToString() ?? "(none)"}.", OperationOutcome.IssueType.Invalid),
        };
    }

    private async Task<FhirResponse> BatchAsync(Bundle bundle, string baseUrl, SmartAccess access, CancellationToken cancellationToken)
    {
        var responses = new List<FhirResponse>(bundle.Entry.Count);
        for (var i = 0; i < bundle.Entry.Count; i++)
        {
            try
            {
                DemandEntry(access, bundle.Entry[i], i);
                responses.Add(await ExecuteSingleAsync(bundle.Entry[i], i, baseUrl, cancellationToken));
            }
            catch (Exception ex) when (FhirExceptionMapping.TryMap(ex, out var status, out var outcome, out _))
            {
                responses.Add(new FhirResponse(status, outcome));
            }
        }

        return new FhirResponse(200, BundleWriter.Response("batch-response", responses, baseUrl, timeProvider.GetUtcNow()));
    }

    private async Task<FhirResponse> ExecuteSingleAsync(Bundle.EntryComponent entry, int index, string baseUrl, CancellationToken cancellationToken)
    {
        var request = entry.Request ?? throw Fail(index, 400, "has no request.");
        var (path, query) = SplitUrl(request.Url, index);
        var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        switch (request.Method)
        {
            case Bundle.HTTPVerb.GET:
                return segments.Length switch
                {
                    1 => await fhir.SearchAsync(segments[0], FhirService.ParseQueryString(query ?? string.Empty), strict: false, baseUrl, null, cancellationToken),
                    2 => await fhir.ReadAsync(segments[0], segments[1], cancellationToken),
                    4 when segments[2] == "_history" => await fhir.VReadAsync(segments[0], segments[1], segments[3], cancellationToken),
                    _ => throw Fail(index, 400, $"GET {request.Url} is not supported in a batch (use Type, Type/id or Type/id/_history/vid)."),
                };
            case Bundle.HTTPVerb.POST:
                var created = entry.Resource ?? throw Fail(index, 400, "is a POST without a resource.");
                return await fhir.CreateAsync(created, request.IfNoneExist, baseUrl, cancellationToken);
            case Bundle.HTTPVerb.PUT when segments.Length == 2:
                var updated = entry.Resource ?? throw Fail(index, 400, "is a PUT without a resource.");
                return await fhir.UpdateAsync(segments[0], segments[1], updated, request.IfMatch, baseUrl, cancellationToken);
            case Bundle.HTTPVerb.DELETE when segments.Length == 2:
                return await fhir.DeleteAsync(segments[0], segments[1], request.IfMatch, cancellationToken);
            default:
                throw Fail(index, 400, $"{request.Method} {request.Url} is not supported in a batch.");
        }
    }

    /// <summary>The permission an entry needs: GET Type search (s), GET Type/id read (r), POST create (c), PUT update
    /// (u), DELETE delete (d); a conditional URL (Type?criteria) or ifNoneExist also searches (s).</summary>
    private static void DemandEntry(SmartAccess access, Bundle.EntryComponent entry, int index)
    {
        if (access.IsUnrestricted || entry.Request is not { } request || string.IsNullOrWhiteSpace(request.Url))
        {
            return; // nothing to check, or refused later as malformed
        }

        var q = request.Url.IndexOf('?', StringComparison.Ordinal);
        var path = (q < 0 ? request.Url : request.Url[..q]).Trim('/');
        var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var type = request.Method == Bundle.HTTPVerb.POST && entry.Resource is { } posted ? posted.TypeName : segments.FirstOrDefault() ?? "*";
        try
        {
            switch (request.Method)
            {
                case Bundle.HTTPVerb.GET when segments.Length == 1:
                    FhirApi.DemandSearch(access, type, FhirService.ParseQueryString(q < 0 ? string.Empty : request.Url[(q + 1)..]));
                    break;
                case Bundle.HTTPVerb.GET:
                    access.Demand(type, SmartPermission.Read, "Read");
                    break;
                case Bundle.HTTPVerb.POST:
                    access.Demand(type, SmartPermission.Create, "Create");
                    if (!string.IsNullOrEmpty(request.IfNoneExist))
                    {
                        access.Demand(type, SmartPermission.Search, "A conditional create (ifNoneExist)");
                    }

                    break;
                case Bundle.HTTPVerb.PUT:
                    access.Demand(type, SmartPermission.Update, "Update");
                    break;
                case Bundle.HTTPVerb.DELETE:
                    access.Demand(type, SmartPermission.Delete, "Delete");
                    break;
            }

            if (q >= 0 && request.Method is Bundle.HTTPVerb.PUT or Bundle.HTTPVerb.DELETE)
            {
                access.Demand(type, SmartPermission.Search, $"A conditional {request.Method}");
            }
        }
        catch (SmartForbiddenException ex)
        {
            throw new SmartForbiddenException($"Entry {index} ({request.Method} {request.Url}): {ex.Message}");
        }
    }

    private sealed class Planned(int index, Bundle.EntryComponent entry)
    {
        public int Index { get; } = index;
        public Bundle.EntryComponent Entry { get; } = entry;

        /// <summary>Checked non-null before any use.</summary>
        public Bundle.RequestComponent Request => Entry.Request!;
        public ResourceWrite? Write { get; set; }

        /// <summary>Set when a conditional create matched an existing resource: nothing is written.</summary>
        public StoredResource? Existing { get; set; }

        public FhirResponse? Response { get; set; }
    }

    private async Task<FhirResponse> TransactionAsync(Bundle bundle, string baseUrl, SmartAccess access, CancellationToken cancellationToken)
    {
        // Every entry's permission first: a transaction the token does not fully cover writes nothing.
        for (var i = 0; i < bundle.Entry.Count; i++)
        {
            DemandEntry(access, bundle.Entry[i], i);
        }

        try
        {
            return await TransactionCoreAsync(bundle, baseUrl, cancellationToken);
        }
        catch (FhirOperationException ex)
        {
            throw new FhirOperationException(ex.Status, ex.Message + " The transaction was not applied: nothing was written.", ex.Code);
        }
    }

    private async Task<FhirResponse> TransactionCoreAsync(Bundle bundle, string baseUrl, CancellationToken cancellationToken)
    {
        var planned = bundle.Entry.Select((e, i) => new Planned(i, e)).ToList();
        var fullUrlMap = new Dictionary<string, string>(StringComparer.Ordinal);
        var touched = new HashSet<string>(StringComparer.Ordinal);

        foreach (var p in planned)
        {
            if (p.Entry.Request is null)
            {
                throw Fail(p.Index, 400, "has no request.");
            }

            if (p.Request.Method is not (Bundle.HTTPVerb.POST or Bundle.HTTPVerb.PUT or Bundle.HTTPVerb.DELETE or Bundle.HTTPVerb.GET))
            {
                throw Fail(p.Index, 400, $"uses {p.Request.Method}, which transactions here do not support (POST, PUT, DELETE, GET).");
            }
        }

        // FHIR processing order: DELETE, POST, PUT, then GET.
        foreach (var p in planned.Where(p => p.Request.Method == Bundle.HTTPVerb.DELETE))
        {
            var (type, id) = await ResolveTargetAsync(p, allowCreate: false, cancellationToken);
            if (id is not null)
            {
                Claim(touched, type, id, p.Index);
                p.Write = ResourceWrite.Delete(type, id, FhirService.ParseIfMatch(p.Request.IfMatch));
            }
            else
            {
                p.Response = new FhirResponse(204, null);
            }
        }

        foreach (var p in planned.Where(p => p.Request.Method == Bundle.HTTPVerb.POST))
        {
            var resource = p.Entry.Resource ?? throw Fail(p.Index, 400, "is a POST without a resource.");
            fhir.EnsureType(resource.TypeName);
            if (!string.IsNullOrEmpty(p.Request.IfNoneExist))
            {
                var matches = await fhir.FindAsync(resource.TypeName, p.Request.IfNoneExist, cancellationToken);
                if (matches.Count > 1)
                {
                    throw Fail(p.Index, 412, $"ifNoneExist '{p.Request.IfNoneExist}' matched {matches.Count} resources.");
                }

                if (matches.Count == 1)
                {
                    p.Existing = matches[0];
                    MapFullUrl(fullUrlMap, p.Entry.FullUrl, $"{matches[0].Type}/{matches[0].Id}");
                    continue;
                }
            }

            resource.Id = Guid.NewGuid().ToString();
            Claim(touched, resource.TypeName, resource.Id, p.Index);
            MapFullUrl(fullUrlMap, p.Entry.FullUrl, $"{resource.TypeName}/{resource.Id}");
            p.Write = ResourceWrite.Create(resource);
        }

        foreach (var p in planned.Where(p => p.Request.Method == Bundle.HTTPVerb.PUT))
        {
            var resource = p.Entry.Resource ?? throw Fail(p.Index, 400, "is a PUT without a resource.");
            var (type, id) = await ResolveTargetAsync(p, allowCreate: true, cancellationToken);
            if (resource.TypeName != type)
            {
                throw Fail(p.Index, 400, $"puts a {resource.TypeName} at a {type} URL.");
            }

            if (id is null)
            {
                id = string.IsNullOrEmpty(resource.Id) ? Guid.NewGuid().ToString() : resource.Id;
            }
            else if (!string.IsNullOrEmpty(resource.Id) && resource.Id != id)
            {
                throw Fail(p.Index, 400, $"has id {resource.Id} in the resource but {id} in the request URL.");
            }

            FhirService.ValidateId(id);
            resource.Id = id;
            Claim(touched, type, id, p.Index);
            MapFullUrl(fullUrlMap, p.Entry.FullUrl, $"{type}/{id}");
            p.Write = ResourceWrite.Update(resource, FhirService.ParseIfMatch(p.Request.IfMatch));
        }

        // Rewrite references: urn:uuid fullUrls and conditional references (which may match stored resources or
        // resources this transaction creates or updates).
        var deleted = planned.Where(p => p.Write?.Kind == WriteKind.Delete).Select(p => $"{p.Write!.Type}/{p.Write.Id}").ToHashSet(StringComparer.Ordinal);
        foreach (var p in planned.Where(p => p.Write?.Resource is not null))
        {
            foreach (var reference in References(p.Write!.Resource!))
            {
                var target = reference.Reference;
                if (string.IsNullOrEmpty(target))
                {
                    continue;
                }

                if (fullUrlMap.TryGetValue(target, out var mapped))
                {
                    reference.Reference = mapped;
                }
                else if (target.StartsWith("urn:uuid:", StringComparison.Ordinal) || target.StartsWith("urn:oid:", StringComparison.Ordinal))
                {
                    throw Fail(p.Index, 400, $"refers to {target}, which is not the fullUrl of any entry in the transaction.");
                }
                else if (target.Contains('?', StringComparison.Ordinal))
                {
                    var q = target.IndexOf('?');
                    var type = target[..q];
                    var criteria = target[(q + 1)..];
                    var candidates = (await FindOrFail(p.Index, type, criteria, cancellationToken))
                        .Where(m => !deleted.Contains($"{m.Type}/{m.Id}"))
                        .Select(m => m.Id)
                        .Concat(InTransaction(planned, type, criteria, p.Index))
                        .Distinct(StringComparer.Ordinal)
                        .ToList();
                    if (candidates.Count != 1)
                    {
                        throw Fail(p.Index, 412, $"has the conditional reference {target}, which matched {candidates.Count} resources (stored or in this transaction); it must match exactly one.");
                    }

                    reference.Reference = $"{type}/{candidates[0]}";
                }
            }
        }

        var writes = planned.Where(p => p.Write is not null).ToList();
        IReadOnlyList<WriteOutcome> outcomes;
        try
        {
            outcomes = await fhir.Store.WriteAsync(writes.Select(w => w.Write!).ToList(), cancellationToken);
        }
        catch (ResourceConflictException ex)
        {
            var entry = writes[ex.WriteIndex].Index;
            throw new FhirOperationException(ex.IsVersionMismatch ? 412 : 409, $"Bundle entry {entry} failed: {ex.Message}", OperationOutcome.IssueType.Conflict);
        }

        for (var i = 0; i < writes.Count; i++)
        {
            var stored = outcomes[i].Resource;
            writes[i].Response = outcomes[i].Status switch
            {
                WriteStatus.Created => ToResponse(stored!, baseUrl, 201),
                WriteStatus.Updated => ToResponse(stored!, baseUrl, 200),
                _ => new FhirResponse(204, null, ETag: stored is null ? null : FhirResponse.WeakETag(stored.VersionId)),
            };
        }

        foreach (var p in planned.Where(p => p.Existing is not null))
        {
            p.Response = ToResponse(p.Existing!, baseUrl, 200);
        }

        foreach (var p in planned.Where(p => p.Request.Method == Bundle.HTTPVerb.GET))
        {
            p.Response = await ExecuteSingleAsync(p.Entry, p.Index, baseUrl, cancellationToken);
        }

        return new FhirResponse(200, BundleWriter.Response("transaction-response", planned.Select(p => p.Response!).ToList(), baseUrl, timeProvider.GetUtcNow()));
    }

    /// <summary>Ids of the resources written by this transaction that match the criteria.</summary>
    private IEnumerable<string> InTransaction(List<Planned> planned, string type, string criteria, int index)
    {
        SearchQuery query;
        try
        {
            query = parser.Parse(type, FhirService.ParseQueryString(criteria), strict: true).Query;
        }
        catch (SearchException ex)
        {
            throw Fail(index, 400, $"has criteria '{type}?{criteria}' that cannot be searched: {ex.Message}");
        }

        return planned
            .Where(x => x.Write is { Kind: not WriteKind.Delete, Resource: { } r } && r.TypeName == type && matcher.Matches(query, r))
            .Select(x => x.Write!.Id);
    }

    private static FhirResponse ToResponse(StoredResource stored, string baseUrl, int status) => new(
        status, stored.Json, $"{baseUrl}/{stored.Type}/{stored.Id}/_history/{stored.VersionId}", FhirResponse.WeakETag(stored.VersionId), stored.LastUpdated);

    private async Task<(string Type, string? Id)> ResolveTargetAsync(Planned p, bool allowCreate, CancellationToken cancellationToken)
    {
        var (path, query) = SplitUrl(p.Request.Url, p.Index);
        var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (query is not null && segments.Length == 1)
        {
            var matches = await FindOrFail(p.Index, segments[0], query, cancellationToken);
            return matches.Count switch
            {
                0 => (segments[0], null),
                1 => (segments[0], matches[0].Id),
                _ => throw Fail(p.Index, 412, $"{p.Request.Method} {p.Request.Url} matched {matches.Count} resources; a conditional {p.Request.Method} must match at most one."),
            };
        }

        if (segments.Length == 2 && query is null)
        {
            fhir.EnsureType(segments[0]);
            return (segments[0], segments[1]);
        }

        if (allowCreate && segments.Length == 1 && query is null)
        {
            throw Fail(p.Index, 400, $"PUT {p.Request.Url} needs Type/id or conditional criteria (Type?param=value).");
        }

        throw Fail(p.Index, 400, $"{p.Request.Method} {p.Request.Url} needs Type/id or Type?criteria.");
    }

    private async Task<IReadOnlyList<StoredResource>> FindOrFail(int index, string type, string criteria, CancellationToken cancellationToken)
    {
        try
        {
            return await fhir.FindAsync(type, criteria, cancellationToken);
        }
        catch (SearchException ex)
        {
            throw Fail(index, 400, $"has criteria '{type}?{criteria}' that cannot be searched: {ex.Message}");
        }
    }

    private static (string Path, string? Query) SplitUrl(string? url, int index)
    {
        if (string.IsNullOrWhiteSpace(url))
        {
            throw Fail(index, 400, "has no request.url.");
        }

        var q = url.IndexOf('?');
        return q < 0 ? (url.Trim('/'), null) : (url[..q].Trim('/'), url[(q + 1)..]);
    }

    private static void MapFullUrl(Dictionary<string, string> map, string? fullUrl, string reference)
    {
        if (!string.IsNullOrEmpty(fullUrl))
        {
            map[fullUrl] = reference;
        }
    }

    private static void Claim(HashSet<string> touched, string type, string id, int index)
    {
        if (!touched.Add(type + "/" + id))
        {
            throw Fail(index, 400, $"writes {type}/{id}, which another entry of the transaction already writes.");
        }
    }

    private static FhirOperationException Fail(int index, int status, string message) =>
        new(status, $"Bundle entry {index} {message}", status == 412 ? OperationOutcome.IssueType.MultipleMatches : OperationOutcome.IssueType.Invalid);

    /// <summary>Every Reference inside the resource (contained resources included).</summary>
    private static IEnumerable<ResourceReference> References(Base node)
    {
        foreach (var (_, value) in node.EnumerateElements())
        {
            var children = value switch
            {
                Base single => [single],
                System.Collections.IEnumerable list and not string => list.OfType<Base>(),
                _ => [],
            };
            foreach (var child in children)
            {
                if (child is ResourceReference reference)
                {
                    yield return reference;
                }

                foreach (var nested in References(child))
                {
                    yield return nested;
                }
            }
        }
    }
}
