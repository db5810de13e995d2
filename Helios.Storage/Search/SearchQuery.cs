using Helios.Storage.Indexing;

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

public enum SearchModifier
{
    None,
    Exact,
    Contains,
    Missing,
    Not,
    Below,
    Above,

    /// <summary>A reference restricted to a target type (<c>subject:Patient</c>).</summary>
    Type,

    Identifier,
}

public enum SearchPrefix
{
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

/// <summary>One parameter of the query: <c>name[:modifier]=v1,v2</c>. <see cref="Parameter"/> is null for <c>_id</c> and <c>_lastUpdated</c>.</summary>
public sealed record SearchCriterion(string Name, SearchParameterInfo? Parameter, SearchModifier Modifier, string? ModifierType, IReadOnlyList<SearchValue> Values);

/// <summary>One value of a criterion, already split by type.</summary>
public sealed record SearchValue
{
    public SearchPrefix Prefix { get; init; } = SearchPrefix.Eq;
    public string? System { get; init; }
    public string? Code { get; init; }
    public bool SystemGiven { get; init; }
    public string? Text { get; init; }
    public long Low { get; init; }
    public long High { get; init; }
    public decimal Number { get; init; }
    public decimal NumberLow { get; init; }
    public decimal NumberHigh { get; init; }
    public string? TargetType { get; init; }
    public string? TargetId { get; init; }
    public bool Missing { get; init; }
}

/// <summary>Sort key: <c>_lastUpdated</c>, <c>_id</c> or a date parameter.</summary>
public sealed record SortSpec(string Name, SearchParameterInfo? DateParameter, bool Descending);

/// <summary><c>SourceType:param[:TargetType]</c>.</summary>
public sealed record IncludeSpec(string SourceType, string Param, string? TargetType);

public sealed record SearchResult(IReadOnlyList<StoredResource> Matches, IReadOnlyList<StoredResource> Included, long? Total, string? NextCursor);
