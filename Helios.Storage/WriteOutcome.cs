namespace Helios.Storage;

public sealed record WriteOutcome(WriteStatus Status, StoredResource? Resource);
