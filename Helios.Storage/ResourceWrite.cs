using Hl7.Fhir.Model;

namespace Helios.Storage;

/// <summary>One write of an atomic batch. <see cref="IfMatchVersion"/> makes it conditional on the current version.</summary>
public sealed record ResourceWrite(WriteKind Kind, string Type, string Id, Resource? Resource, int? IfMatchVersion = null)
{
    public static ResourceWrite Create(Resource resource) =>
        new(WriteKind.Create, resource.TypeName, resource.Id ?? throw new ArgumentException("The resource needs an id.", nameof(resource)), resource);

    public static ResourceWrite Update(Resource resource, int? ifMatchVersion = null) =>
        new(WriteKind.Update, resource.TypeName, resource.Id ?? throw new ArgumentException("The resource needs an id.", nameof(resource)), resource, ifMatchVersion);

    public static ResourceWrite Delete(string type, string id, int? ifMatchVersion = null) => new(WriteKind.Delete, type, id, null, ifMatchVersion);
}
