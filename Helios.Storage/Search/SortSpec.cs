using Helios.Storage.Indexing;

namespace Helios.Storage.Search;

/// <summary>Sort key: <c>_lastUpdated</c>, <c>_id</c> or a date parameter.</summary>
public sealed record SortSpec(string Name, SearchParameterInfo? DateParameter, bool Descending);
