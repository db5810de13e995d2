using System.Globalization;
using Helios.Hosting;
using Helios.Storage;
using Helios.Storage.Fhir;
using Helios.Storage.Indexing;
using Helios.Storage.Search;
using Hl7.Fhir.Model;
using Microsoft.Extensions.Options;

namespace Helios.Api.Fhir;

/// <summary>
/// The FHIR interactions (create, read, vread, update, delete, search, history), used by the REST endpoints and by
/// batch entries. Every failure is a <see cref="FhirOperationException"/> (or a store/search/parse exception that
/// the middleware maps to an OperationOutcome).
/// </summary>
public sealed class FhirService(
    IResourceStore store,
    SearchQueryParser parser,
    SearchParameterRegistry registry,
    IOptions<HeliosOptions> options,
    TimeProvider timeProvider)
{
    public IResourceStore Store => store;

    public void EnsureType(string type)
    {
        if (!registry.IsKnownType(type))
        {
            throw new FhirOperationException(404, $"'{type}' is not a FHIR R4 resource type this server supports.", OperationOutcome.IssueType.NotSupported);
        }
    }

    public static Resource ParseBody(string json, string? expectedType)
    {
        var resource = FhirJson.ParseResource(System.Text.Encoding.UTF8.GetBytes(json), strict: true);
        if (expectedType is not null && resource.TypeName != expectedType)
        {
            throw new FhirOperationException(400, $"The body is a {resource.TypeName} but the URL names {expectedType}.", OperationOutcome.IssueType.Invalid);
        }

        return resource;
    }

    public async Task<FhirResponse> CreateAsync(Resource resource, string? ifNoneExist, string baseUrl, CancellationToken cancellationToken)
    {
        var type = resource.TypeName;
        EnsureType(type);
        if (!string.IsNullOrEmpty(ifNoneExist))
        {
            var matches = await FindAsync(type, ifNoneExist, cancellationToken);
            if (matches.Count == 1)
            {
                return Ok(matches[0], baseUrl, 200);
            }

            if (matches.Count > 1)
            {
                throw new FhirOperationException(412, $"If-None-Exist '{ifNoneExist}' matched {matches.Count} {type} resources; it must match at most one.", OperationOutcome.IssueType.MultipleMatches);
            }
        }

        resource.Id = Guid.NewGuid().ToString();
        var outcome = (await store.WriteAsync([ResourceWrite.Create(resource)], cancellationToken))[0];
        return Ok(outcome.Resource!, baseUrl, 201);
    }

    public async Task<FhirResponse> ReadAsync(string type, string id, CancellationToken cancellationToken)
    {
        EnsureType(type);
        var stored = await store.ReadAsync(type, id, cancellationToken)
            ?? throw new FhirOperationException(404, $"{type}/{id} does not exist.", OperationOutcome.IssueType.NotFound);
        if (stored.IsDeleted)
        {
            throw new FhirOperationException(410, $"{type}/{id} was deleted (version {stored.VersionId}).", OperationOutcome.IssueType.Deleted);
        }

        return Ok(stored, null, 200);
    }

    public async Task<FhirResponse> VReadAsync(string type, string id, string version, CancellationToken cancellationToken)
    {
        EnsureType(type);
        if (!int.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var v))
        {
            throw new FhirOperationException(404, $"Version '{version}' of {type}/{id} does not exist: versions are positive integers.", OperationOutcome.IssueType.NotFound);
        }

        var stored = await store.ReadVersionAsync(type, id, v, cancellationToken)
            ?? throw new FhirOperationException(404, $"{type}/{id}/_history/{version} does not exist.", OperationOutcome.IssueType.NotFound);
        if (stored.IsDeleted)
        {
            throw new FhirOperationException(410, $"{type}/{id}/_history/{version} is the deletion of the resource.", OperationOutcome.IssueType.Deleted);
        }

        return Ok(stored, null, 200);
    }

    public async Task<FhirResponse> UpdateAsync(string type, string id, Resource resource, string? ifMatch, string baseUrl, CancellationToken cancellationToken)
    {
        EnsureType(type);
        if (resource.TypeName != type)
        {
            throw new FhirOperationException(400, $"The body is a {resource.TypeName} but the URL names {type}.", OperationOutcome.IssueType.Invalid);
        }

        if (string.IsNullOrEmpty(resource.Id))
        {
            throw new FhirOperationException(400, $"The {type} in the body has no id; an update must carry the id of the URL ({id}).", OperationOutcome.IssueType.Required);
        }

        if (resource.Id != id)
        {
            throw new FhirOperationException(400, $"The id in the body ({resource.Id}) differs from the id in the URL ({id}).", OperationOutcome.IssueType.Invalid);
        }

        ValidateId(id);
        var outcome = (await store.WriteAsync([ResourceWrite.Update(resource, ParseIfMatch(ifMatch))], cancellationToken))[0];
        return Ok(outcome.Resource!, baseUrl, outcome.Status == WriteStatus.Created ? 201 : 200);
    }

    public async Task<FhirResponse> DeleteAsync(string type, string id, string? ifMatch, CancellationToken cancellationToken)
    {
        EnsureType(type);
        var outcome = (await store.WriteAsync([ResourceWrite.Delete(type, id, ParseIfMatch(ifMatch))], cancellationToken))[0];
        return outcome.Resource is { } r
            ? new FhirResponse(204, null, ETag: FhirResponse.WeakETag(r.VersionId), LastModified: r.LastUpdated)
            : new FhirResponse(204, null);
    }

    public async Task<FhirResponse> SearchAsync(
        string type, IReadOnlyList<KeyValuePair<string, string>> parameters, bool strict, string baseUrl, string? compartmentPatient, CancellationToken cancellationToken)
    {
        EnsureType(type);
        var parsed = parser.Parse(type, parameters, strict, options.Value.DefaultPageSize);
        parsed.Query.CompartmentPatientId = compartmentPatient;
        var result = await store.SearchAsync(parsed.Query, cancellationToken);
        var path = compartmentPatient is null ? type : $"Patient/{compartmentPatient}/{type}";
        var kept = parameters.Where(p => p.Key != "_cursor").ToList();
        var self = BuildUrl(baseUrl, path, parameters);
        var next = result.NextCursor is null ? null : BuildUrl(baseUrl, path, [.. kept, new("_cursor", result.NextCursor)]);
        var entries = result.Matches.Select(m => new BundleWriter.Entry(m, "match"))
            .Concat(result.Included.Select(i => new BundleWriter.Entry(i, "include")));
        var outcome = parsed.Ignored.Count > 0 ? OperationOutcomes.Information(parsed.Ignored.Select(i => i + "; it was ignored.")) : null;
        return new FhirResponse(200, BundleWriter.SearchSet(self, next, result.Total, entries, baseUrl, outcome, timeProvider.GetUtcNow()));
    }

    /// <summary>Resolves a conditional criteria string (<c>identifier=x|y</c>) to the matching current resources.</summary>
    public async Task<IReadOnlyList<StoredResource>> FindAsync(string type, string criteria, CancellationToken cancellationToken)
    {
        EnsureType(type);
        var pairs = ParseQueryString(criteria);
        if (pairs.Count == 0)
        {
            throw new FhirOperationException(400, $"Conditional criteria for {type} are empty.", OperationOutcome.IssueType.Invalid);
        }

        var parsed = parser.Parse(type, pairs, strict: true, defaultCount: 2);
        parsed.Query.Count = 2;
        return (await store.SearchAsync(parsed.Query, cancellationToken)).Matches;
    }

    public async Task<FhirResponse> HistoryAsync(string? type, string? id, IReadOnlyList<KeyValuePair<string, string>> parameters, string baseUrl, CancellationToken cancellationToken)
    {
        if (type is not null)
        {
            EnsureType(type);
        }

        var count = options.Value.DefaultPageSize;
        DateTimeOffset? since = null;
        long? before = null;
        foreach (var (key, value) in parameters)
        {
            switch (key)
            {
                case "_count":
                    if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out count) || count < 1)
                    {
                        throw new FhirOperationException(400, $"_count must be a positive integer, not '{value}'.", OperationOutcome.IssueType.Invalid);
                    }

                    count = Math.Min(count, SearchQueryParser.MaxCount);
                    break;
                case "_since":
                    if (!FhirDateRange.TryParse(value, out var low, out _))
                    {
                        throw new FhirOperationException(400, $"_since must be an instant such as 2024-01-01T00:00:00Z, not '{value}'.", OperationOutcome.IssueType.Invalid);
                    }

                    since = FhirDateRange.FromMicros(low);
                    break;
                case "_before_seq":
                    before = long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var b) ? b
                        : throw new FhirOperationException(400, "The history paging cursor is invalid.", OperationOutcome.IssueType.Invalid);
                    break;
                case "_format" or "_pretty":
                    break;
                default:
                    throw new FhirOperationException(400, $"History does not support the parameter '{key}' (supported: _count, _since).", OperationOutcome.IssueType.NotSupported);
            }
        }

        if (id is not null && type is not null && await store.ReadAsync(type, id, cancellationToken) is null)
        {
            throw new FhirOperationException(404, $"{type}/{id} does not exist.", OperationOutcome.IssueType.NotFound);
        }

        var versions = await store.HistoryAsync(new HistoryQuery(type, id, since, count + 1, before), cancellationToken);
        var page = versions.Take(count).ToList();
        var path = (type, id) switch
        {
            (null, _) => "_history",
            (_, null) => $"{type}/_history",
            _ => $"{type}/{id}/_history",
        };
        var next = versions.Count > count
            ? BuildUrl(baseUrl, path, [.. parameters.Where(p => p.Key != "_before_seq"), new("_before_seq", page[^1].Seq.ToString(CultureInfo.InvariantCulture))])
            : null;
        return new FhirResponse(200, BundleWriter.History(BuildUrl(baseUrl, path, parameters), next, page, baseUrl, timeProvider.GetUtcNow()));
    }

    public static int? ParseIfMatch(string? ifMatch)
    {
        if (string.IsNullOrWhiteSpace(ifMatch))
        {
            return null;
        }

        var text = ifMatch.Trim();
        if (text.StartsWith("W/", StringComparison.Ordinal))
        {
            text = text[2..];
        }

        text = text.Trim('"');
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw new FhirOperationException(400, $"If-Match '{ifMatch}' is not a version ETag such as W/\"3\".", OperationOutcome.IssueType.Invalid);
    }

    public static void ValidateId(string id)
    {
        if (id.Length is 0 or > 64 || !id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.'))
        {
            throw new FhirOperationException(400, $"'{id}' is not a valid FHIR id: 1-64 characters of A-Z, a-z, 0-9, '-' and '.'.", OperationOutcome.IssueType.Invalid);
        }
    }

    public static List<KeyValuePair<string, string>> ParseQueryString(string query)
    {
        var result = new List<KeyValuePair<string, string>>();
        foreach (var part in query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = part.IndexOf('=');
            var key = Uri.UnescapeDataString((eq < 0 ? part : part[..eq]).Replace('+', ' '));
            var value = eq < 0 ? string.Empty : Uri.UnescapeDataString(part[(eq + 1)..].Replace('+', ' '));
            result.Add(new(key, value));
        }

        return result;
    }

    private static string BuildUrl(string baseUrl, string path, IEnumerable<KeyValuePair<string, string>> parameters)
    {
        var query = string.Join("&", parameters.Select(p => Uri.EscapeDataString(p.Key) + "=" + Uri.EscapeDataString(p.Value)));
        return query.Length == 0 ? $"{baseUrl}/{path}" : $"{baseUrl}/{path}?{query}";
    }

    private static FhirResponse Ok(StoredResource stored, string? baseUrl, int status) => new(
        status,
        stored.Json,
        baseUrl is null ? null : $"{baseUrl}/{stored.Type}/{stored.Id}/_history/{stored.VersionId}",
        FhirResponse.WeakETag(stored.VersionId),
        stored.LastUpdated);
}
