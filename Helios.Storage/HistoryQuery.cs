namespace Helios.Storage;

/// <summary>A history read: versions newest first, filtered by type, id and <c>_since</c>, paged by key (<see cref="BeforeSeq"/>).</summary>
public sealed record HistoryQuery(string? Type, string? Id, DateTimeOffset? Since, int Count, long? BeforeSeq);
