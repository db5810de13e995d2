namespace Helios.Export.Requests;

/// <summary>The <c>includeAssociatedData</c> values Helios supports.</summary>
public static class AssociatedData
{
    /// <summary>Only the most recent Provenance per exported resource (and no other Provenance).</summary>
    public const string LatestProvenance = "LatestProvenanceResources";

    /// <summary>Every Provenance whose target is an exported resource.</summary>
    public const string RelevantProvenance = "RelevantProvenanceResources";

    /// <summary>Helios's own value: also the resources of other types that exported resources reference
    /// (Practitioner, Organization, Location, Medication, ...), each once, at the same snapshot.</summary>
    public const string Referenced = "_referenced";

    public static IReadOnlyList<string> Supported { get; } = [LatestProvenance, RelevantProvenance, Referenced];
}
