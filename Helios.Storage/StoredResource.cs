namespace Helios.Storage;

/// <summary>One stored version of a resource. <see cref="Json"/> is the exact text served and exported
/// (it already carries <c>id</c>, <c>meta.versionId</c> and <c>meta.lastUpdated</c>); empty for a delete tombstone.</summary>
public sealed record StoredResource(
    long Seq,
    string Type,
    string Id,
    int VersionId,
    DateTimeOffset LastUpdated,
    bool IsDeleted,
    string Json);
