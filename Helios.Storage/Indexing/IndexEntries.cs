namespace Helios.Storage.Indexing;

/// <summary>The kinds of search index rows, one table each.</summary>
public enum IndexKind
{
    Token,
    String,
    Reference,
    Date,
    Number,
    Quantity,
    Uri,
}

/// <summary>A token: <c>system|code</c> (either part may be absent).</summary>
public readonly record struct TokenEntry(string Param, string? System, string? Code);

/// <summary>A string: the normalized form (lower case, no diacritics) for default/prefix search and the exact form.</summary>
public readonly record struct StringEntry(string Param, string Normalized, string Exact);

/// <summary>A reference: a local <c>Type/id</c> (with <see cref="TargetType"/>) or an absolute URL in <see cref="TargetId"/>.</summary>
public readonly record struct ReferenceEntry(string Param, string? TargetType, string TargetId);

/// <summary>A date range in microseconds since the Unix epoch, both ends inclusive.</summary>
public readonly record struct DateEntry(string Param, long Low, long High);

public readonly record struct NumberEntry(string Param, decimal Value);

public readonly record struct QuantityEntry(string Param, string? System, string? Code, decimal Value);

public readonly record struct UriEntry(string Param, string Value);

/// <summary>All index rows extracted from one resource version, plus the patients whose compartments hold it.</summary>
public sealed class IndexEntries
{
    public List<TokenEntry> Tokens { get; } = [];
    public List<StringEntry> Strings { get; } = [];
    public List<ReferenceEntry> References { get; } = [];
    public List<DateEntry> Dates { get; } = [];
    public List<NumberEntry> Numbers { get; } = [];
    public List<QuantityEntry> Quantities { get; } = [];
    public List<UriEntry> Uris { get; } = [];

    /// <summary>Ids of the patients whose compartment contains the resource.</summary>
    public HashSet<string> Compartments { get; } = new(StringComparer.Ordinal);

    public int Count => Tokens.Count + Strings.Count + References.Count + Dates.Count + Numbers.Count + Quantities.Count + Uris.Count + Compartments.Count;
}
