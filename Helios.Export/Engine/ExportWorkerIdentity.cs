namespace Helios.Export.Engine;

/// <summary>This process's worker id (lease owner name): unique across hosts and restarts.</summary>
public sealed class ExportWorkerIdentity
{
    public string Id { get; } = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}";
}
