using Hl7.Fhir.Model;

namespace Helios.Storage;

public enum WriteKind
{
    /// <summary>Create with the id the resource carries; the store refuses it if the id exists and is not deleted.</summary>
    Create,

    /// <summary>Update (or create when absent: update-as-create).</summary>
    Update,

    Delete,
}

/// <summary>One write of an atomic batch. <see cref="IfMatchVersion"/> makes it conditional on the current version.</summary>
public sealed record ResourceWrite(WriteKind Kind, string Type, string Id, Resource? Resource, int? IfMatchVersion = null)
{
    public static ResourceWrite Create(Resource resource) =>
        new(WriteKind.Create, resource.TypeName, resource.Id ?? throw new ArgumentException("The resource needs an id.", nameof(resource)), resource);

    public static ResourceWrite Update(Resource resource, int? ifMatchVersion = null) =>
        new(WriteKind.Update, resource.TypeName, resource.Id ?? throw new ArgumentException("The resource needs an id.", nameof(resource)), resource, ifMatchVersion);

    public static ResourceWrite Delete(string type, string id, int? ifMatchVersion = null) => new(WriteKind.Delete, type, id, null, ifMatchVersion);
}

public enum WriteStatus
{
    Created,
    Updated,
    Deleted,

    /// <summary>A delete of a resource that does not exist or is already deleted: nothing was written.</summary>
    NothingToDelete,
}

public sealed record WriteOutcome(WriteStatus Status, StoredResource? Resource);
