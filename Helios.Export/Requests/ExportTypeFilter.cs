namespace Helios.Export.Requests;

/// <summary>
/// One <c>_typeFilter</c> query: a resource type and its search parameters (names with any modifier, values decoded),
/// validated at kick-off by the REST API's search parser. The filters of one type are OR-ed; the parameters of one
/// filter AND-ed, as in a search.
/// </summary>
public sealed record ExportTypeFilter(string Type, IReadOnlyList<KeyValuePair<string, string>> Parameters)
{
    /// <summary>The query as a client would write it (<c>Type?name=value&amp;...</c>), for messages.</summary>
    public override string ToString() =>
        Parameters.Count == 0 ? Type : Type + "?" + string.Join("&", Parameters.Select(p => p.Key + "=" + p.Value));
}
