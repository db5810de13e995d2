namespace Helios.Export.Jobs;

public static class ExportFileKinds
{
    public const string Output = "output";
    public const string Error = "error";

    /// <summary>Deleted-resources files (<c>_since</c> exports): NDJSON of transaction Bundles with DELETE entries.</summary>
    public const string Deleted = "deleted";
}
