namespace Helios.Storage.Indexing;

/// <summary>A date range in microseconds since the Unix epoch, both ends inclusive.</summary>
public readonly record struct DateEntry(string Param, long Low, long High);
