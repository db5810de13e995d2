namespace Helios.Storage.Indexing;

/// <summary>A string: the normalized form (lower case, no diacritics) for default/prefix search and the exact form.</summary>
public readonly record struct StringEntry(string Param, string Normalized, string Exact);
