namespace Helios.Export.Jobs;

public static class ExportFileKinds
{
    public const string Output = "output";
    public const string Error = "error";

    /// <summary>Deleted-resources files (<c>_since</c> exports): NDJSON of transaction Bundles with DELETE entries.</summary>
    public const string Deleted = "deleted";

    /// <summary>A partition kind, not a file kind: resources associated with the export (<c>includeAssociatedData</c>),
    /// chosen by id from a set the planner filled; their files are <see cref="Output"/>.</summary>
    public const string Associated = "associated";

    /// <summary>A partition kind: a key range of Patients written as patient blocks (<c>organizeOutputBy=Patient</c>);
    /// its files are <see cref="Output"/>.</summary>
    public const string PatientBlocks = "patient-blocks";
}
