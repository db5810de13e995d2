namespace Helios.Storage.Search;

/// <summary>A parsed, validated search over one resource type. Criteria are AND-ed; values of one criterion OR-ed.</summary>
public sealed class SearchQuery
{
    public required string Type { get; init; }

    public List<SearchCriterion> Criteria { get; } = [];

    /// <summary>Restricts to the compartment of this patient (<c>GET Patient/{id}/{type}</c>).</summary>
    public string? CompartmentPatientId { get; set; }

    public int Count { get; set; } = 20;

    public SortSpec? Sort { get; set; }

    /// <summary>Opaque keyset cursor from a previous page's next link.</summary>
    public string? Cursor { get; set; }

    public bool IncludeTotal { get; set; }

    /// <summary>Only count (<c>_summary=count</c>): no resources are returned.</summary>
    public bool CountOnly { get; set; }

    public List<IncludeSpec> Includes { get; } = [];

    public List<IncludeSpec> RevIncludes { get; } = [];
}
