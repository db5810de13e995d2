namespace Helios.Storage.Indexing;

public readonly record struct QuantityEntry(string Param, string? System, string? Code, decimal Value);
