namespace Helios.Storage.Indexing;

public readonly record struct UriEntry(string Param, string Value);
