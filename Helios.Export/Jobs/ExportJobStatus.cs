namespace Helios.Export.Jobs;

public enum ExportJobStatus
{
    Accepted,
    Running,
    Completed,
    Failed,
    Cancelled,
}
