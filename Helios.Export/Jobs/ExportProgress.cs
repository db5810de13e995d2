namespace Helios.Export.Jobs;

public sealed record ExportProgress(long EstimatedRows, long DoneRows, int Partitions, int PartitionsDone)
{
    public int Percent => EstimatedRows <= 0 ? 0 : (int)Math.Min(99, DoneRows * 100 / EstimatedRows);
}
