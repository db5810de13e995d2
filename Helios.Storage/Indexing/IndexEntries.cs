namespace Helios.Storage.Indexing;

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
