namespace Helios.Export.Engine;

/// <summary>A status, cancel or download names an export that is unknown, cancelled or expired (404).</summary>
public sealed class ExportJobNotFoundException(string jobId)
    : Exception($"There is no export '{jobId}': it never existed, was cancelled, or expired and was deleted.")
{
    public string JobId { get; } = jobId;
}
