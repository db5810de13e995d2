namespace Helios.Export.Engine;

/// <summary>A Group-level kick-off names a Group that does not exist (or is deleted): the caller's mistake (404).</summary>
public sealed class ExportGroupNotFoundException(string groupId)
    : Exception($"Group/{groupId} does not exist (or is deleted), so it cannot be exported.")
{
    public string GroupId { get; } = groupId;
}
