using Helios.Storage.Search;
using Task = System.Threading.Tasks.Task;

namespace Helios.Storage;

/// <summary>
/// The versioned FHIR resource store: writes, reads, history, search and the bulk load (the export engine reads
/// through <see cref="Snapshots.IExportSource"/>). Every write assigns a new version with a strictly increasing
/// <c>meta.lastUpdated</c> and a strictly increasing integer key (<see cref="StoredResource.Seq"/>); previous
/// versions are kept; a delete writes a tombstone.
/// </summary>
public interface IResourceStore
{
    /// <summary>Applies the writes atomically, in order: all of them or none.</summary>
    Task<IReadOnlyList<WriteOutcome>> WriteAsync(IReadOnlyList<ResourceWrite> writes, CancellationToken cancellationToken);

    /// <summary>The current version (a tombstone when deleted), or null when the resource never existed.</summary>
    Task<StoredResource?> ReadAsync(string type, string id, CancellationToken cancellationToken);

    Task<StoredResource?> ReadVersionAsync(string type, string id, int version, CancellationToken cancellationToken);

    /// <summary>Versions newest first, filtered by type/id/since, paged by key.</summary>
    Task<IReadOnlyList<StoredResource>> HistoryAsync(HistoryQuery query, CancellationToken cancellationToken);

    Task<SearchResult> SearchAsync(SearchQuery query, CancellationToken cancellationToken);

    /// <summary>The bulk path: writes one batch of already parsed and indexed resources in one transaction. Resources
    /// keep their ids; an existing id gets a new version (update-as-create).</summary>
    Task LoadBatchAsync(IReadOnlyList<PreparedResource> batch, CancellationToken cancellationToken);

    /// <summary><see cref="LoadBatchAsync(IReadOnlyList{PreparedResource}, CancellationToken)"/> in a load that began
    /// on an empty store (see <see cref="ISchemaMigrator.TryDropNaturalKeyIndexAsync"/>): earlier versions of a key
    /// are found in <paramref name="keys"/> (which the batch updates), not looked up in the store.</summary>
    Task LoadBatchAsync(IReadOnlyList<PreparedResource> batch, LoadKeys? keys, CancellationToken cancellationToken);
}
