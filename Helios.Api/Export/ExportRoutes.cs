namespace Helios.Api.Export;

/// <summary>The path segments of the Bulk Data routes (kick-off routes are fixed by the IG).</summary>
public static class ExportRoutes
{
    public const string StatusSegment = "$export-status";
    public const string FileSegment = "$export-file";

    public static string StatusUrl(string baseUrl, string jobId) => $"{baseUrl}/{StatusSegment}/{jobId}";

    public static string FileUrl(string baseUrl, string jobId, string fileName) => $"{baseUrl}/{FileSegment}/{jobId}/{Uri.EscapeDataString(fileName)}";
}
