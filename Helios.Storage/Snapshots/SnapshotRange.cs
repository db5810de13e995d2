using Helios.Storage.Search;

namespace Helios.Storage.Snapshots;

/// <summary>A key range (<see cref="AfterSeq"/>, <see cref="UpToSeq"/>] of one type as of a snapshot, read at most
/// <see cref="Limit"/> rows at a time, optionally restricted to a patient set and a <c>_since</c> instant.</summary>
public sealed record SnapshotRange(string Type, long SnapshotSeq, long AfterSeq = 0, long UpToSeq = long.MaxValue, int Limit = 10_000)
{
    /// <summary>When set, only resources in the compartment of a patient of this named set (a Patient matches its own id).</summary>
    public string? PatientSetId { get; init; }

    /// <summary>When set, only versions last updated strictly after this instant (<c>_since</c>).</summary>
    public DateTimeOffset? Since { get; init; }

    /// <summary>With <see cref="Since"/>: resources in the compartment of a patient of this named set are selected
    /// whatever their last update (members who joined a Group after <c>_since</c>).</summary>
    public string? SinceExemptSetId { get; init; }

    /// <summary>Instead of resources, the deletions: tombstones current at the snapshot, each copied as a one-entry
    /// transaction Bundle (<c>request.method</c> DELETE, <c>request.url</c> Type/id), the manifest's <c>deleted</c>
    /// files. With a patient set, the compartment is the one of the version the delete replaced.</summary>
    public bool Deleted { get; init; }

    /// <summary>When set, only resources whose id is in this named id set (filled by
    /// <see cref="IExportSource.FillReferencedSetsAsync"/> or <see cref="IExportSource.FillProvenanceSetAsync"/>): an
    /// export's associated resources.</summary>
    public string? IdSetId { get; init; }

    /// <summary>When set (<c>_typeFilter</c>), only resources matching at least one of these searches of
    /// <see cref="Type"/> (their criteria, evaluated at the snapshot; paging and sorting of the queries are not used).</summary>
    public IReadOnlyList<SearchQuery>? Filters { get; init; }
}
