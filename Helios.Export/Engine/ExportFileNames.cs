using System.Globalization;

namespace Helios.Export.Engine;

internal static class ExportFileNames
{
    /// <summary><c>{Type}-{partition}-{part}-{token}.ndjson</c>: the fencing token in the name keeps a stale holder's
    /// upload from ever replacing a committed part.</summary>
    public static string Part(string type, int partitionNo, int partNo, long token) =>
        string.Create(CultureInfo.InvariantCulture, $"{type}-{partitionNo:D4}-{partNo:D3}-{token}.ndjson");

    /// <summary><c>{Type}-deleted-{partition}-{part}-{token}.ndjson</c>: deletions of one type (<c>_since</c> exports).</summary>
    public static string DeletedPart(string type, int partitionNo, int partNo, long token) =>
        string.Create(CultureInfo.InvariantCulture, $"{type}-deleted-{partitionNo:D4}-{partNo:D3}-{token}.ndjson");

    /// <summary><c>patients-{partition}-{part}-{token}.ndjson</c>: patient blocks (<c>organizeOutputBy=Patient</c>).</summary>
    public static string BlocksPart(int partitionNo, int partNo, long token) =>
        string.Create(CultureInfo.InvariantCulture, $"patients-{partitionNo:D4}-{partNo:D3}-{token}.ndjson");

    /// <summary><c>OperationOutcome-{partition}-{part}-{token}.ndjson</c>: resources a partition had to leave out.</summary>
    public static string ErrorPart(int partitionNo, int partNo, long token) =>
        string.Create(CultureInfo.InvariantCulture, $"OperationOutcome-{partitionNo:D4}-{partNo:D3}-{token}.ndjson");

    public const string IgnoredParameters = "OperationOutcome-ignored-parameters.ndjson";
}
