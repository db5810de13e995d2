using Helios.Export.Jobs;
using Helios.Export.Requests;
using Helios.Storage.Search;
using Helios.Storage.Snapshots;

namespace Helios.Export.Engine;

/// <summary>What an export reads of one type, as snapshot ranges: the same conditions for the planner (associated
/// sets) and the partition runs.</summary>
public sealed class ExportRanges(SearchQueryParser searchParser)
{
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
