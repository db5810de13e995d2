namespace Helios.Export.Jobs;

public static class ExportFileKinds
{
    public const string Output = "output";
    public const string Error = "error";
}
