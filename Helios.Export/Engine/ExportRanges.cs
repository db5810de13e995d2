using Helios.Export.Jobs;
using Helios.Export.Requests;
using Helios.Storage.Indexing;
using Helios.Storage.Search;
using Helios.Storage.Snapshots;

namespace Helios.Export.Engine;

/// <summary>What an export reads of one type, as snapshot ranges: the same conditions for the planner (associated
/// sets) and the partition runs.</summary>
public sealed class ExportRanges(SearchQueryParser searchParser, SearchParameterRegistry registry)
{
    /// <summary>Whether the export reads Provenance from its associated set (<c>includeAssociatedData</c>) instead of
    /// selecting it like other types: always for Latest; for Relevant unless a system export selects every Provenance
    /// anyway (Relevant, the least restrictive, wins when both are given).</summary>
    public static bool ProvenanceFromSet(ExportRequest request, bool provenanceSelected)
    {
        ArgumentNullException.ThrowIfNull(request);
        var requested = request.AssociatedData ?? [];
        var relevant = requested.Contains(AssociatedData.RelevantProvenance);
        var latest = !relevant && requested.Contains(AssociatedData.LatestProvenance);
        return latest || (relevant && !(request.Level == ExportLevel.System && provenanceSelected));
    }

    /// <summary>The Patients of an <c>organizeOutputBy=Patient</c> partition: the population (a set at every level
    /// then), by key, <paramref name="limit"/> at a time.</summary>
    public static SnapshotRange BlockPatients(ExportJob job, long afterSeq, long upToSeq, int limit) =>
        new("Patient", job.SnapshotSeq, afterSeq, upToSeq, limit) { PatientSetId = job.Id };

    /// <summary>Whether a patient's block holds the Patient itself (its selection), or null when Patient is not exported.</summary>
    public SnapshotRange? BlockPatientSelection(ExportJob job) =>
        job.Request.Types is null || job.Request.Types.Contains("Patient") ? Selected(job, "Patient") : null;

    /// <summary>The selections of the compartment types in a patient's block.</summary>
    public IReadOnlyList<SnapshotRange> BlockMembers(ExportJob job)
    {
        var types = (job.Request.Types ?? registry.PatientCompartmentTypes).Where(t => t != "Patient" && registry.PatientCompartmentTypeSet.Contains(t)).ToList();
        if (ProvenanceFromSet(job.Request, types.Contains("Provenance")))
        {
            types.Remove("Provenance");
        }

        return [.. types.Order(StringComparer.Ordinal).Select(t => Selected(job, t))];
    }

    /// <summary>The name of the id set of a type's associated resources (<c>includeAssociatedData</c>); it is removed
    /// with the job's patient set, whose name it extends.</summary>
    public static string AssociatedSetId(string jobId, string type) => AssociatedSetPrefix(jobId) + type;

    public static string AssociatedSetPrefix(string jobId) => jobId + ":assoc:";

    /// <summary>The set of a Group export's members who joined after <c>_since</c> and get all their data (see
    /// <see cref="ExportOptions.GroupSinceNewMembers"/>; empty under the default policy).</summary>
    public static string NewMembersSetId(string jobId) => jobId + ":new";

    /// <summary>The resources of <paramref name="type"/> the export selects at its level: the population, <c>_since</c>
    /// and <c>_typeFilter</c> applied.</summary>
    public SnapshotRange Selected(ExportJob job, string type, long afterSeq = 0, long upToSeq = long.MaxValue, int limit = 10_000) =>
        new(type, job.SnapshotSeq, afterSeq, upToSeq, limit)
        {
            PatientSetId = job.Request.Level == ExportLevel.System ? null : job.Id,
            Since = job.Request.Since,
            SinceExemptSetId = job.Request is { Level: ExportLevel.Group, Since: not null } ? NewMembersSetId(job.Id) : null,
            Filters = FiltersFor(job.Request, type),
        };

    /// <summary>What a leased partition reads: its kind decides between the selection, the deletions, and the
    /// associated resources (chosen by id alone: outside the population and whatever their last update).</summary>
    public SnapshotRange ForPartition(ExportJob job, PartitionLease lease, long afterSeq, int limit) => lease.Kind switch
    {
        ExportFileKinds.Associated => new SnapshotRange(lease.Type, job.SnapshotSeq, afterSeq, lease.UpToSeq, limit) { IdSetId = AssociatedSetId(job.Id, lease.Type) },
        ExportFileKinds.Deleted => Selected(job, lease.Type, afterSeq, lease.UpToSeq, limit) with { Deleted = true, Filters = null, SinceExemptSetId = null },
        _ => Selected(job, lease.Type, afterSeq, lease.UpToSeq, limit),
    };

    /// <summary>The <c>_typeFilter</c> searches of one type (validated at kick-off), or null when it has none.</summary>
    private IReadOnlyList<SearchQuery>? FiltersFor(ExportRequest request, string type)
    {
        var queries = request.TypeFilters?.Where(f => f.Type == type).Select(f => searchParser.Parse(type, f.Parameters, strict: false).Query).ToList();
        return queries is { Count: > 0 } ? queries : null;
    }
}
