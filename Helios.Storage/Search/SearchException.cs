namespace Helios.Storage.Search;

/// <summary>A search request that cannot be run as asked (HTTP 400).</summary>
public sealed class SearchException(string message) : Exception(message);
