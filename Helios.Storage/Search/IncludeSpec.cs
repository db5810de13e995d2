namespace Helios.Storage.Search;

/// <summary><c>SourceType:param[:TargetType]</c>.</summary>
public sealed record IncludeSpec(string SourceType, string Param, string? TargetType);
