namespace Helios.Export.Jobs;

/// <summary>Work the supervisor found without a live Hangfire job: planning an export, or running its partitions.</summary>
public sealed record ExportWorkItem(string JobId, bool Plan);
