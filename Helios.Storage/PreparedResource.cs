using Hl7.Fhir.Model;

namespace Helios.Storage;

/// <summary>A resource with its index rows, extracted ahead of the write: either an SDK POCO (serialized at write
/// time) or the bulk path's checked JSON (the store splices its version and instant into the text).</summary>
public sealed class PreparedResource
{
    private readonly byte[]? _head;
    private readonly byte[]? _tail;
    private readonly ReadOnlyMemory<byte> _rest;

    public PreparedResource(Resource resource, Indexing.IndexEntries index)
    {
        ArgumentNullException.ThrowIfNull(resource);
        Resource = resource;
        Type = resource.TypeName;
        Id = resource.Id ?? throw new ArgumentException("The resource needs an id.", nameof(resource));
        Index = index;
    }

    /// <summary>Keeps the text template, not the parsed document (which the caller disposes).</summary>
    public PreparedResource(Fhir.JsonResource json, Indexing.IndexEntries index)
    {
        ArgumentNullException.ThrowIfNull(json);
        Type = json.Type;
        Id = json.Id;
        _head = json.Head;
        _tail = json.Tail;
        _rest = json.Rest;
        Index = index;
    }

    public string Type { get; }

    public string Id { get; }

    public Resource? Resource { get; }

    public Indexing.IndexEntries Index { get; }

    /// <summary>The JSON (UTF-8) of this resource as version <paramref name="version"/> written at <paramref name="lastUpdated"/>.</summary>
    public byte[] Compose(int version, DateTimeOffset lastUpdated)
    {
        if (Resource is { } resource)
        {
            resource.Id = Id;
            resource.Meta ??= new Meta();
            resource.Meta.VersionId = version.ToString(System.Globalization.CultureInfo.InvariantCulture);
            resource.Meta.LastUpdated = lastUpdated;
            return Fhir.FhirJson.SerializeToUtf8(resource);
        }

        return Fhir.JsonResource.Compose(_head!, version, lastUpdated, _tail!, _rest.Span);
    }
}
