namespace Helios.Storage.Snapshots;

/// <summary>An export's point in time: keys at or below <see cref="Seq"/> are in, and <see cref="TransactionTime"/> is
/// no earlier than any of them.</summary>
public sealed record StoreSnapshot(long Seq, DateTimeOffset TransactionTime);
