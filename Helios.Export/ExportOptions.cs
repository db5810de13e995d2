using System.ComponentModel.DataAnnotations;

namespace Helios.Export;

/// <summary>Settings under <c>Helios:Export</c>.</summary>
public sealed class ExportOptions
{
    public const string SectionName = "Helios:Export";

    /// <summary>Stored versions per partition (an upper bound of the resources it exports): the unit of work one
    /// worker leases (one type, one key range).</summary>
    [Range(1, int.MaxValue)]
    public int PartitionRows { get; set; } = 50_000;

    /// <summary>An output file is closed and a new part started once it reaches this size.</summary>
    [Range(1, long.MaxValue)]
    public long MaxPartBytes { get; set; } = 128L * 1024 * 1024;

    /// <summary>Hangfire jobs enqueued per export (capped by its partition count): each claims and runs partitions
    /// until none is left, so this bounds how many workers one export can occupy.</summary>
    [Range(1, 10_000)]
    public int MaxParallelism { get; set; } = 64;

    /// <summary>Rows read from the store per query while a partition runs.</summary>
    [Range(1, int.MaxValue)]
    public int ReadBatchRows { get; set; } = 10_000;

    /// <summary>How long a partition lease lasts without a heartbeat; a dead worker's partition is reclaimed after it.</summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often a running partition renews its lease (and notices a cancel).</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Claims of one partition before the export is failed as abandoned (with the default backoff, 8 attempts
    /// ride out about three minutes of a store or file store that fails every attempt).</summary>
    [Range(1, 100)]
    public int MaxAttempts { get; set; } = 8;

    /// <summary>How long a partition that failed waits before it may be claimed again; doubled after every further
    /// failed attempt, up to <see cref="MaxRetryBackoff"/>. A partition whose worker died or lost its lease is not
    /// delayed.</summary>
    public TimeSpan RetryBackoff { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The longest wait between two attempts of a partition.</summary>
    public TimeSpan MaxRetryBackoff { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a finished export's files and status stay available.</summary>
    public TimeSpan OutputTtl { get; set; } = TimeSpan.FromHours(24);

    /// <summary>Exports accepted or running at once per client; the next kick-off gets 429.</summary>
    [Range(1, 10_000)]
    public int MaxActivePerClient { get; set; } = 5;

    /// <summary>Exports accepted or running at once per tenant.</summary>
    [Range(1, 100_000)]
    public int MaxActivePerTenant { get; set; } = 50;

    /// <summary>Seconds a client is told to wait between status polls.</summary>
    [Range(1, 3600)]
    public int RetryAfterSeconds { get; set; } = 2;

    /// <summary>How long status polls of one export share what they read: the job row and its progress are read at
    /// most once per this interval per Api process however many clients poll, and a completed manifest is built once.
    /// A cancel through this Api is seen at once; a cancel, completion or failure elsewhere within this interval
    /// (0 turns sharing off).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:10")]
    public TimeSpan StatusCacheTtl { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>A client that polls an unfinished export again before <see cref="PollThrottleFraction"/> of the
    /// Retry-After it was given has passed gets 429 with a new Retry-After (0 turns the check off).</summary>
    [Range(0.0, 1.0)]
    public double PollThrottleFraction { get; set; } = 0.5;

    /// <summary>Whether this process runs a Hangfire server for export work (the embedded Api always does).</summary>
    public bool RunWorkers { get; set; } = true;

    /// <summary>Hangfire worker threads in this process; 0 means one per core, at least two.</summary>
    [Range(0, 256)]
    public int WorkerCount { get; set; }

    /// <summary>How often the supervisor re-enqueues lost work and deletes expired exports.</summary>
    public TimeSpan SupervisorInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>An unfinished export that nobody holds a lease on, and whose last Hangfire job was enqueued longer ago
    /// than this, gets a new run (its runs were lost, e.g. with a killed worker or a restarted in-memory Hangfire).</summary>
    public TimeSpan RequeueAfter { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary><c>auto</c> (local files in embedded, S3 in postgres-s3), <c>local</c> (a directory every Api and worker
    /// shares) or <c>s3</c>.</summary>
    public string FileStore { get; set; } = "auto";

    /// <summary>Directory for exported files with the local file store (default: <c>exports</c> under the data directory).</summary>
    public string? LocalDirectory { get; set; }

    /// <summary>Hand out presigned S3 URLs in the manifest (<c>requiresAccessToken: false</c>) instead of Api-authorized
    /// download URLs that redirect to a short-lived presigned URL.</summary>
    public bool DirectDownloadUrls { get; set; }

    /// <summary>Lifetime of a presigned download URL.</summary>
    public TimeSpan PresignedUrlLifetime { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>A Group export with <c>_since</c>: what it returns of a patient who became a member after <c>_since</c>
    /// (not an active member of the Group as it was then: added in a later version, or a <c>member.period.start</c>
    /// after it). <see cref="NewGroupMemberData.ChangesOnly"/> (the default) applies <c>_since</c> to everyone;
    /// <see cref="NewGroupMemberData.AllData"/> exports such a patient's whole compartment, so the client gets the
    /// history it never had.</summary>
    public NewGroupMemberData GroupSinceNewMembers { get; set; } = NewGroupMemberData.ChangesOnly;

    /// <summary>Fault injection for tests and drills: a pause before each batch a partition reads.</summary>
    public TimeSpan DelayPerBatch { get; set; } = TimeSpan.Zero;
}
