using System.Globalization;

namespace Helios.Export.Engine;

internal static class ExportFileNames
{
    /// <summary><c>{Type}-{partition}-{part}-{token}.ndjson</c>: the fencing token in the name keeps a stale holder's
    /// upload from ever replacing a committed part.</summary>
    public static string Part(string type, int partitionNo, int partNo, long token) =>
        string.Create(CultureInfo.InvariantCulture, $"{type}-{partitionNo:D4}-{partNo:D3}-{token}.ndjson");

    public const string IgnoredParameters = "OperationOutcome-ignored-parameters.ndjson";
}
