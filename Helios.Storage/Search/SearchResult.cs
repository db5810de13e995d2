namespace Helios.Storage.Search;

public sealed record SearchResult(IReadOnlyList<StoredResource> Matches, IReadOnlyList<StoredResource> Included, long? Total, string? NextCursor);
