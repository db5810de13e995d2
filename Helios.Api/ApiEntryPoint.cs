namespace Helios.Api;

/// <summary>Marker type for <c>WebApplicationFactory&lt;ApiEntryPoint&gt;</c>.</summary>
public sealed class ApiEntryPoint;
