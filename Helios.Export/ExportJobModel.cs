namespace Helios.Export;

public enum ExportJobStatus
{
    Accepted,
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// <summary>An export job row: the request, its snapshot, and where it stands.</summary>
public sealed record ExportJob(
    string Id,
    string Tenant,
    string Owner,
    ExportJobStatus Status,
    ExportRequest Request,
    string RequestUrl,
    string BaseUrl,
    DateTimeOffset TransactionTime,
    long SnapshotSeq,
    DateTimeOffset CreatedAt,
    DateTimeOffset? CompletedAt,
    DateTimeOffset? ExpiresAt,
    string? Error)
{
    /// <summary>W3C trace context of the kick-off, so the planner's and runs' spans link back to it.</summary>
    public string? TraceParent { get; init; }
}

/// <summary>One unit of leased work: a resource type and a key range of it.</summary>
public sealed record ExportPartitionPlan(int PartitionNo, string Type, long AfterSeq, long UpToSeq, long EstimatedRows);

/// <summary>A held lease on a partition. <see cref="Token"/> is the fencing token: every commit names it, and a claim
/// by anyone else bumps it, so a stale holder's writes are refused.</summary>
public sealed record PartitionLease(
    string JobId,
    int PartitionNo,
    string WorkerId,
    long Token,
    string Type,
    long AfterSeq,
    long UpToSeq,
    long CursorSeq,
    int NextPart,
    long Exported,
    int Attempt);

public static class ExportFileKinds
{
    public const string Output = "output";
    public const string Error = "error";
}

/// <summary>A published, committed file of an export.</summary>
public sealed record ExportFile(string JobId, string FileName, string Kind, string Type, int PartitionNo, int PartNo, long ResourceCount, long ByteCount);

public sealed record ExportProgress(long EstimatedRows, long DoneRows, int Partitions, int PartitionsDone)
{
    public int Percent => EstimatedRows <= 0 ? 0 : (int)Math.Min(99, DoneRows * 100 / EstimatedRows);
}

public enum CreateJobOutcome
{
    Created,
    ClientLimitReached,
    TenantLimitReached,
}

/// <summary>Work the supervisor found without a live Hangfire job: planning an export, or running its partitions.</summary>
public sealed record ExportWorkItem(string JobId, bool Plan);

/// <summary>What finishing a partition did.</summary>
public enum PartitionCompletion
{
    /// <summary>The lease was stale (reclaimed, or the export ended): nothing was written.</summary>
    Refused,
    Done,
    /// <summary>Done, and it was the last one: the export is complete.</summary>
    JobCompleted,
}
