using Helios.Storage.Search;
using Hl7.Fhir.Model;
using Task = System.Threading.Tasks.Task;

namespace Helios.Storage;

/// <summary>
/// The versioned FHIR resource store. Every write assigns a new version with a strictly increasing
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

    /// <summary>
    /// Streams, in key order, the versions of one type that were current at <see cref="SnapshotRange.SnapshotSeq"/>
    /// (not deleted at that point), with keys in (<see cref="SnapshotRange.AfterSeq"/>, <see cref="SnapshotRange.UpToSeq"/>]:
    /// the read of an export partition. Later writes never show; resumption continues after the last key seen.
    /// </summary>
    IAsyncEnumerable<StoredResource> ReadSnapshotAsync(SnapshotRange range, CancellationToken cancellationToken);

    /// <summary>
    /// Fixes an export's point in time: the highest committed key and an instant no earlier than any committed write,
    /// taken under the writer lock so no write is in flight; every later write gets a larger key and a later instant.
    /// </summary>
    Task<StoreSnapshot> CaptureSnapshotAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Lists key ranges of one type at a snapshot, each holding about <paramref name="rowsPerRange"/> versions (an
    /// upper bound of the current ones): the partitions of an export. Empty when the type has no version at or below
    /// the snapshot key. Reads only the key index.
    /// </summary>
    Task<IReadOnlyList<KeyRange>> GetKeyRangesAsync(string type, long snapshotSeq, int rowsPerRange, CancellationToken cancellationToken);

    /// <summary>The resource types that have at least one version at or below the snapshot key.</summary>
    Task<IReadOnlyList<string>> GetTypesAsync(long snapshotSeq, CancellationToken cancellationToken);

    /// <summary>The version of one resource current at a snapshot (a tombstone when deleted then), or null.</summary>
    Task<StoredResource?> ReadAtSnapshotAsync(string type, string id, long snapshotSeq, CancellationToken cancellationToken);

    /// <summary>Adds patient ids to a named set (idempotent), for <see cref="SnapshotRange.PatientSetId"/>.</summary>
    Task AddToPatientSetAsync(string setId, IReadOnlyCollection<string> patientIds, CancellationToken cancellationToken);

    /// <summary>Fills a named set with every Patient current (not deleted) at the snapshot; returns how many.</summary>
    Task<long> FillPatientSetFromSnapshotAsync(string setId, long snapshotSeq, CancellationToken cancellationToken);

    Task DeletePatientSetAsync(string setId, CancellationToken cancellationToken);

    /// <summary>
    /// The export hot path: appends the stored JSON text of the rows <see cref="ReadSnapshotAsync"/> would return, as
    /// NDJSON (one line each), to <paramref name="sink"/>, copying UTF-8 bytes without decoding them. Stops after
    /// <see cref="SnapshotRange.Limit"/> rows, or after the row that brings the bytes written to
    /// <paramref name="maxBytes"/>; the result says where it stopped and whether the range is exhausted.
    /// </summary>
    Task<SnapshotCopy> CopySnapshotAsync(SnapshotRange range, ISnapshotSink sink, long maxBytes, CancellationToken cancellationToken);

    /// <summary>Highest committed key: everything at or below it is visible (the snapshot point of an export).</summary>
    Task<long> GetLastSeqAsync(CancellationToken cancellationToken);

    /// <summary>Counts current (not deleted) resources per type.</summary>
    Task<IReadOnlyDictionary<string, long>> CountByTypeAsync(CancellationToken cancellationToken);
}

public sealed record HistoryQuery(string? Type, string? Id, DateTimeOffset? Since, int Count, long? BeforeSeq);

/// <summary>A key range of one type as of a snapshot, optionally restricted to the compartments of some patients.</summary>
public sealed record SnapshotRange(string Type, long SnapshotSeq, long AfterSeq = 0, long UpToSeq = long.MaxValue, int Limit = 10_000)
{
    /// <summary>When set, only resources in these patients' compartments (a Patient matches its own id).</summary>
    public IReadOnlyCollection<string>? PatientIds { get; init; }

    /// <summary>When set, only resources in the compartment of a patient of this named set (a Patient matches its own id).</summary>
    public string? PatientSetId { get; init; }

    /// <summary>When set, only versions last updated strictly after this instant (<c>_since</c>).</summary>
    public DateTimeOffset? Since { get; init; }
}

/// <summary>Where <see cref="IResourceStore.CopySnapshotAsync"/> stopped: rows and bytes written, the last key
/// written (resume after it), and whether the range has no more rows.</summary>
public sealed record SnapshotCopy(long Rows, long Bytes, long LastSeq, bool Exhausted);

/// <summary>Receives NDJSON bytes from <see cref="IResourceStore.CopySnapshotAsync"/>.</summary>
public interface ISnapshotSink
{
    ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken);
}

/// <summary>An export's point in time: keys at or below <see cref="Seq"/> are in, and <see cref="TransactionTime"/> is
/// no earlier than any of them.</summary>
public sealed record StoreSnapshot(long Seq, DateTimeOffset TransactionTime);

/// <summary>Keys in (<see cref="AfterSeq"/>, <see cref="UpToSeq"/>], holding <see cref="Rows"/> versions of the type.</summary>
public sealed record KeyRange(long AfterSeq, long UpToSeq, long Rows);

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
