namespace Helios.Storage.Snapshots;

/// <summary>Keys in (<see cref="AfterSeq"/>, <see cref="UpToSeq"/>], holding <see cref="Rows"/> versions of the type.</summary>
public sealed record KeyRange(long AfterSeq, long UpToSeq, long Rows);
