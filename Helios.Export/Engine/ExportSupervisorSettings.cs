namespace Helios.Export.Engine;

/// <summary>Topology-dependent supervisor behaviour.</summary>
public sealed record ExportSupervisorSettings(bool ResetLeasesOnStartup);
