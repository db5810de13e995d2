namespace Helios.Storage;

public enum WriteKind
{
    /// <summary>Create with the id the resource carries; the store refuses it if the id exists and is not deleted.</summary>
    Create,

    /// <summary>Update (or create when absent: update-as-create).</summary>
    Update,

    Delete,
}
