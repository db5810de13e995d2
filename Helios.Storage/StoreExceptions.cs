namespace Helios.Storage;

/// <summary>A write's precondition (If-Match version, create of an existing id) failed; nothing was written.</summary>
public sealed class ResourceConflictException(string message, int writeIndex, bool isVersionMismatch) : Exception(message)
{
    /// <summary>Index of the failing write in the batch.</summary>
    public int WriteIndex { get; } = writeIndex;

    /// <summary>True for an If-Match mismatch (HTTP 412); false for a create of an existing id (HTTP 409).</summary>
    public bool IsVersionMismatch { get; } = isVersionMismatch;
}
