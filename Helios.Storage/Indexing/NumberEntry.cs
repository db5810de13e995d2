namespace Helios.Storage.Indexing;

public readonly record struct NumberEntry(string Param, decimal Value);
