namespace Helios.Storage.Snapshots;

/// <summary>
/// The export engine's read port over the resource store (one implementation per backend): fixes an export's point
/// in time, lists what it covers (types, key ranges), holds its patient population, and copies stored JSON straight
/// into NDJSON parts. Every read is as of a snapshot key, so later writes never show. Filters of the export
/// parameters are pushed down here.
/// </summary>
public interface IExportSource
{
    /// <summary>
    /// Fixes an export's point in time: the highest committed key and an instant no earlier than any committed write,
    /// taken under the writer lock so no write is in flight; every later write gets a larger key and a later instant.
    /// </summary>
    Task<StoreSnapshot> CaptureSnapshotAsync(CancellationToken cancellationToken);

    /// <summary>The highest key written at or before <paramref name="instant"/> (keys and instants rise together), or
    /// 0 when nothing was: the snapshot of the data as it was then (<c>_until</c>).</summary>
    Task<long> GetSeqAtAsync(DateTimeOffset instant, CancellationToken cancellationToken);

    /// <summary>The resource types that have at least one version at or below the snapshot key.</summary>
    Task<IReadOnlyList<string>> GetTypesAsync(long snapshotSeq, CancellationToken cancellationToken);

    /// <summary>
    /// Lists key ranges of one type at a snapshot, each holding about <paramref name="rowsPerRange"/> versions (an
    /// upper bound of the current ones): the partitions of an export. Empty when the type has no version at or below
    /// the snapshot key. Reads only the key index.
    /// </summary>
    /// <param name="afterSeq">Only keys above this one (a <c>_since</c> export starts after the last key written by
    /// then: keys and instants rise together).</param>
    Task<IReadOnlyList<KeyRange>> GetKeyRangesAsync(string type, long snapshotSeq, int rowsPerRange, CancellationToken cancellationToken, long afterSeq = 0);

    /// <summary>Whether a type has a deletion (tombstone) with a key in (<paramref name="afterSeq"/>,
    /// <paramref name="snapshotSeq"/>]: a <c>_since</c> export plans deletion partitions only for those.</summary>
    Task<bool> HasDeletionsAsync(string type, long afterSeq, long snapshotSeq, CancellationToken cancellationToken);

    /// <summary>The version of one resource current at a snapshot (a tombstone when deleted then), or null.</summary>
    Task<StoredResource?> ReadAtSnapshotAsync(string type, string id, long snapshotSeq, CancellationToken cancellationToken);

    /// <summary>Adds patient ids to a named set (idempotent), for <see cref="SnapshotRange.PatientSetId"/>.</summary>
    Task AddToPatientSetAsync(string setId, IReadOnlyCollection<string> patientIds, CancellationToken cancellationToken);

    /// <summary>Fills a named set with every Patient current (not deleted) at the snapshot; returns how many.</summary>
    Task<long> FillPatientSetFromSnapshotAsync(string setId, long snapshotSeq, CancellationToken cancellationToken);

    /// <summary>Removes a named set and the sets named after it (<c>setId:...</c>).</summary>
    Task DeletePatientSetAsync(string setId, CancellationToken cancellationToken);

    /// <summary>
    /// For the resources <paramref name="exported"/> selects (its key bounds ignored), adds the ids of what they
    /// reference among <paramref name="targetTypes"/> to the sets named <paramref name="setPrefix"/> + target type
    /// (references known to the search index: those of the reference search parameters). Returns rows added.
    /// </summary>
    Task<long> FillReferencedSetsAsync(string setPrefix, SnapshotRange exported, IReadOnlyCollection<string> targetTypes, CancellationToken cancellationToken);

    /// <summary>
    /// Adds to the set <paramref name="setId"/> the Provenance current at the snapshot whose <c>target</c> is one of
    /// the resources <paramref name="exported"/> selects: all of them, or with <paramref name="latestOnly"/> only the
    /// most recently written one per target. Returns rows added.
    /// </summary>
    Task<long> FillProvenanceSetAsync(string setId, SnapshotRange exported, bool latestOnly, CancellationToken cancellationToken);

    /// <summary>The sizes of the non-empty sets whose names start with <paramref name="prefix"/>, by name.</summary>
    Task<IReadOnlyDictionary<string, long>> CountSetsAsync(string prefix, CancellationToken cancellationToken);

    /// <summary>Adds the ids of the resources <paramref name="exported"/> selects to the set <paramref name="setId"/>.</summary>
    Task<long> FillIdSetAsync(string setId, SnapshotRange exported, CancellationToken cancellationToken);

    /// <summary>
    /// The export hot path: appends, as NDJSON (one line each), the stored JSON text of the versions of
    /// <see cref="SnapshotRange.Type"/> current at the snapshot (not deleted then) with keys in the range, in key order,
    /// to <paramref name="sink"/>, copying UTF-8 bytes without decoding them. Stops after
    /// <see cref="SnapshotRange.Limit"/> rows, or after the row that brings the bytes written to
    /// <paramref name="maxBytes"/>; the result says where it stopped (resume after it) and whether the range is exhausted.
    /// </summary>
    Task<SnapshotCopy> CopySnapshotAsync(SnapshotRange range, ISnapshotSink sink, long maxBytes, CancellationToken cancellationToken);

    /// <summary>
    /// <c>organizeOutputBy=Patient</c>: for the Patients <paramref name="patients"/> selects (at most its limit, in key
    /// order, its own since and filters ignored), appends one block each: a header line (a <c>Parameters</c> resource
    /// whose <c>header</c> parameter references the Patient), then the Patient when <paramref name="patientSelection"/>
    /// (null: never) selects it, then the resources of its compartment <paramref name="members"/> select (their
    /// patient sets ignored), in key order. A patient with nothing selected gets no block. Stops after the block that
    /// brings the bytes written to <paramref name="maxBytes"/> (a block is never split). Rows count every line written;
    /// the last key is the last Patient's.
    /// </summary>
    Task<SnapshotCopy> CopyPatientBlocksAsync(
        SnapshotRange patients, SnapshotRange? patientSelection, IReadOnlyList<SnapshotRange> members, ISnapshotSink sink, long maxBytes, CancellationToken cancellationToken);
}
