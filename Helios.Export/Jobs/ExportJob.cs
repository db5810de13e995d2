using Helios.Export.Requests;

namespace Helios.Export.Jobs;

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
