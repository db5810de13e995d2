namespace Helios.Storage.Indexing;

/// <summary>A reference: a local <c>Type/id</c> (with <see cref="TargetType"/>) or an absolute URL in <see cref="TargetId"/>.</summary>
public readonly record struct ReferenceEntry(string Param, string? TargetType, string TargetId);
