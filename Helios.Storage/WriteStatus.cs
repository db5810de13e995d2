namespace Helios.Storage;

public enum WriteStatus
{
    Created,
    Updated,
    Deleted,

    /// <summary>A delete of a resource that does not exist or is already deleted: nothing was written.</summary>
    NothingToDelete,
}
