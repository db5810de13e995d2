using Helios.Testing;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace Helios.Export.Tests;

/// <summary>
/// The job store's lease and fencing rules, driven deterministically with a fake clock (no races, no sleeps), on
/// SQLite and PostgreSQL.
/// </summary>
public abstract class JobStoreContract : IAsyncLifetime
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Ttl = TimeSpan.FromHours(24);

    protected FakeTimeProvider Clock { get; } = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    protected IExportJobStore Jobs { get; private set; } = null!;

    protected abstract Task<IExportJobStore> CreateAsync();

    public async Task InitializeAsync()
    {
        Jobs = await CreateAsync();
        await Jobs.MigrateAsync(CancellationToken.None);
    }

    public virtual Task DisposeAsync() => Task.CompletedTask;

    private static CancellationToken Ct => CancellationToken.None;

    private ExportJob NewJob(string owner = "client-a", string tenant = "t1") => new(
        Guid.NewGuid().ToString("N"), tenant, owner, ExportJobStatus.Accepted, new ExportRequest { Level = ExportLevel.System, Types = ["Patient"] },
        "http://h/$export", "http://h", Clock.GetUtcNow(), 100, Clock.GetUtcNow(), null, null, null);

    private async Task<ExportJob> PlannedJobAsync(int partitions)
    {
        var job = NewJob(owner: Guid.NewGuid().ToString("N"));
        Assert.Equal(CreateJobOutcome.Created, await Jobs.CreateJobAsync(job, 10, 100, Ct));
        var plan = Enumerable.Range(0, partitions).Select(i => new ExportPartitionPlan(i, "Patient", i * 10, (i + 1) * 10, 10)).ToList();
        Assert.True(await Jobs.SavePlanAsync(job.Id, plan, [], Ttl, Ct));
        Assert.False(await Jobs.SavePlanAsync(job.Id, plan, [], Ttl, Ct)); // planned once only
        return job;
    }

    private static ExportFile Part(PartitionLease lease, int partNo, long count = 5) =>
        new(lease.JobId, $"Patient-{lease.PartitionNo:D4}-{partNo:D3}-{lease.Token}.ndjson", ExportFileKinds.Output, lease.Type, lease.PartitionNo, partNo, count, count * 100);

    [Fact]
    public async Task StaleLeaseHolder_IsFencedOut_AfterAnotherWorkerReclaims()
    {
        var job = await PlannedJobAsync(1);
        var a = await Jobs.ClaimPartitionAsync(job.Id, 0, "worker-a", Lease, 5, Ct);
        Assert.NotNull(a);
        Assert.Equal(1, a!.Token);
        Assert.True(await Jobs.CommitPartAsync(a, Part(a, 0), 15, Ct));

        // A live lease cannot be taken.
        Assert.Null(await Jobs.ClaimPartitionAsync(job.Id, 0, "worker-b", Lease, 5, Ct));

        // Worker A stalls past its lease; B reclaims and resumes after A's last committed part.
        Clock.Advance(Lease + TimeSpan.FromSeconds(1));
        var b = await Jobs.ClaimPartitionAsync(job.Id, 0, "worker-b", Lease, 5, Ct);
        Assert.NotNull(b);
        Assert.Equal(2, b!.Token);
        Assert.Equal(15, b.CursorSeq);
        Assert.Equal(1, b.NextPart);
        Assert.Equal(5, b.Exported);

        // Every write of the stale holder is refused.
        Assert.False(await Jobs.CommitPartAsync(a with { NextPart = 1 }, Part(a, 1), 20, Ct));
        Assert.False(await Jobs.RenewLeaseAsync(a, Lease, Ct));
        Assert.Equal(PartitionCompletion.Refused, await Jobs.CompletePartitionAsync(a, Ttl, Ct));
        await Jobs.ReleasePartitionAsync(a, "stale", TimeSpan.Zero, Ct);
        Assert.True(await Jobs.RenewLeaseAsync(b, Lease, Ct));

        // The new holder commits; a part number is committed once only.
        Assert.True(await Jobs.CommitPartAsync(b, Part(b, 1), 20, Ct));
        Assert.False(await Jobs.CommitPartAsync(b, Part(b, 1), 20, Ct));
        Assert.Equal(PartitionCompletion.JobCompleted, await Jobs.CompletePartitionAsync(b, Ttl, Ct));

        var files = await Jobs.GetFilesAsync(job.Id, Ct);
        Assert.Equal(["Patient-0000-000-1.ndjson", "Patient-0000-001-2.ndjson"], files.Select(f => f.FileName));
        var done = await Jobs.GetJobAsync(job.Id, Ct);
        Assert.Equal(ExportJobStatus.Completed, done!.Status);
        Assert.Equal(Clock.GetUtcNow() + Ttl, done.ExpiresAt);
    }

    [Fact]
    public async Task Polls_AreRecorded_AndOneTooSoonIsRefused()
    {
        var job = NewJob(owner: Guid.NewGuid().ToString("N"));
        Assert.Equal(CreateJobOutcome.Created, await Jobs.CreateJobAsync(job, 10, 100, Ct));
        var interval = TimeSpan.FromSeconds(2);
        Assert.True(await Jobs.TryRecordPollAsync(job.Id, interval, Ct));
        Assert.False(await Jobs.TryRecordPollAsync(job.Id, interval, Ct));
        Clock.Advance(TimeSpan.FromSeconds(1));
        Assert.False(await Jobs.TryRecordPollAsync(job.Id, interval, Ct));
        Clock.Advance(TimeSpan.FromSeconds(1));
        Assert.True(await Jobs.TryRecordPollAsync(job.Id, interval, Ct));
        Assert.False(await Jobs.TryRecordPollAsync("no-such-job", interval, Ct));
    }

    [Fact]
    public async Task LastPartitionToFinish_CompletesTheJob()
    {
        var job = await PlannedJobAsync(3);
        var leases = new List<PartitionLease>();
        for (var i = 0; i < 3; i++)
        {
            leases.Add((await Jobs.ClaimPartitionAsync(job.Id, i, $"w{i}", Lease, 5, Ct))!);
        }

        var progress = await Jobs.GetProgressAsync(job.Id, Ct);
        Assert.Equal((30L, 0L, 3, 0), (progress.EstimatedRows, progress.DoneRows, progress.Partitions, progress.PartitionsDone));
        Assert.Equal(PartitionCompletion.Done, await Jobs.CompletePartitionAsync(leases[2], Ttl, Ct));
        Assert.Equal(PartitionCompletion.Done, await Jobs.CompletePartitionAsync(leases[0], Ttl, Ct));
        Assert.Equal(66, (await Jobs.GetProgressAsync(job.Id, Ct)).Percent);
        Assert.Equal(ExportJobStatus.Running, (await Jobs.GetJobAsync(job.Id, Ct))!.Status);

        Assert.Equal(PartitionCompletion.JobCompleted, await Jobs.CompletePartitionAsync(leases[1], Ttl, Ct));
        Assert.Equal(ExportJobStatus.Completed, (await Jobs.GetJobAsync(job.Id, Ct))!.Status);
        Assert.Null(await Jobs.ClaimPartitionAsync(job.Id, 1, "late", Lease, 5, Ct));
    }

    [Fact]
    public async Task Cancel_FencesRunningWork_AndTheJobBecomesDisposable()
    {
        var job = await PlannedJobAsync(2);
        var lease = (await Jobs.ClaimPartitionAsync(job.Id, 0, "w", Lease, 5, Ct))!;
        Assert.True(await Jobs.CancelJobAsync(job.Id, Ct));
        Assert.False(await Jobs.CancelJobAsync(job.Id, Ct));
        Assert.False(await Jobs.RenewLeaseAsync(lease, Lease, Ct));
        Assert.False(await Jobs.CommitPartAsync(lease, Part(lease, 0), 5, Ct));
        Assert.Null(await Jobs.ClaimPartitionAsync(job.Id, 1, "w2", Lease, 5, Ct));

        // Not deleted while a worker may still be writing; at once when it lets go.
        Assert.DoesNotContain(job.Id, await Jobs.FindDisposableAsync(100, Ct));
        await Jobs.ReleasePartitionAsync(lease, "cancelled", TimeSpan.Zero, Ct);
        Assert.Contains(job.Id, await Jobs.FindDisposableAsync(100, Ct));
        await Jobs.DeleteJobAsync(job.Id, Ct);
        Assert.Null(await Jobs.GetJobAsync(job.Id, Ct));
    }

    [Fact]
    public async Task ClaimingAny_TakesDistinctPartitions_FewestAttemptsFirst()
    {
        var job = await PlannedJobAsync(3);
        var first = await Jobs.ClaimPartitionAsync(job.Id, null, "w1", Lease, 5, Ct);
        var second = await Jobs.ClaimPartitionAsync(job.Id, null, "w2", Lease, 5, Ct);
        Assert.Equal([0, 1], new[] { first!.PartitionNo, second!.PartitionNo });

        // A released (failed) partition goes behind the untouched one.
        await Jobs.ReleasePartitionAsync(first, "boom", TimeSpan.Zero, Ct);
        var third = await Jobs.ClaimPartitionAsync(job.Id, null, "w3", Lease, 5, Ct);
        Assert.Equal(2, third!.PartitionNo);
        var fourth = await Jobs.ClaimPartitionAsync(job.Id, null, "w4", Lease, 5, Ct);
        Assert.Equal((0, 2, 2L), (fourth!.PartitionNo, fourth.Attempt, fourth.Token));
        Assert.Null(await Jobs.ClaimPartitionAsync(job.Id, null, "w5", Lease, 5, Ct));
    }

    [Fact]
    public async Task AFailedPartition_ReleasedWithABackoff_IsNotClaimableUntilItPasses()
    {
        var job = await PlannedJobAsync(1);
        var first = (await Jobs.ClaimPartitionAsync(job.Id, null, "w1", Lease, 5, Ct))!;
        Assert.Null(await Jobs.GetNextRetryAsync(job.Id, 5, Ct));

        await Jobs.ReleasePartitionAsync(first, "S3 unreachable", TimeSpan.FromSeconds(8), Ct);
        Assert.Equal(Clock.GetUtcNow() + TimeSpan.FromSeconds(8), await Jobs.GetNextRetryAsync(job.Id, 5, Ct));
        Assert.Null(await Jobs.ClaimPartitionAsync(job.Id, null, "w2", Lease, 5, Ct));
        Clock.Advance(TimeSpan.FromSeconds(7));
        Assert.Null(await Jobs.ClaimPartitionAsync(job.Id, 0, "w2", Lease, 5, Ct));
        Clock.Advance(TimeSpan.FromSeconds(1));
        var second = await Jobs.ClaimPartitionAsync(job.Id, null, "w2", Lease, 5, Ct);
        Assert.Equal((0, 2), (second!.PartitionNo, second.Attempt));

        // Attempts used up: nothing to wait for, and the supervisor sees it abandoned.
        await Jobs.ReleasePartitionAsync(second, "S3 unreachable", TimeSpan.FromSeconds(8), Ct);
        Assert.Null(await Jobs.GetNextRetryAsync(job.Id, 2, Ct));
        Assert.Contains(await Jobs.FindAbandonedAsync(2, Ct), a => a.JobId == job.Id && a.LastError == "S3 unreachable");
    }

    [Fact]
    public async Task ABackoffThatEnds_GetsANewRun_OnceFromTheSupervisor()
    {
        var job = await PlannedJobAsync(2);
        ExportWorkItem run = new(job.Id, Plan: false);
        var stale = Clock.GetUtcNow() - TimeSpan.FromMinutes(2);
        var held = (await Jobs.ClaimPartitionAsync(job.Id, 1, "w1", Lease, 5, Ct))!;
        var failed = (await Jobs.ClaimPartitionAsync(job.Id, 0, "w1", Lease, 5, Ct))!;
        Assert.DoesNotContain(run, await Jobs.TakeWorkToEnqueueAsync(stale, Ct));

        // The run that released it ended; while the backoff lasts there is nothing to enqueue (a lease is live).
        await Jobs.ReleasePartitionAsync(failed, "S3 unreachable", TimeSpan.FromSeconds(10), Ct);
        Clock.Advance(TimeSpan.FromSeconds(9));
        Assert.DoesNotContain(run, await Jobs.TakeWorkToEnqueueAsync(stale, Ct));

        // Due: one new run, not one per supervisor pass.
        Clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Contains(run, await Jobs.TakeWorkToEnqueueAsync(stale, Ct));
        Clock.Advance(TimeSpan.FromSeconds(1));
        Assert.DoesNotContain(run, await Jobs.TakeWorkToEnqueueAsync(stale, Ct));
        Assert.NotNull(await Jobs.ClaimPartitionAsync(job.Id, null, "w2", Lease, 5, Ct));
        Assert.Equal(PartitionCompletion.Done, await Jobs.CompletePartitionAsync(held, Ttl, Ct));
    }

    [Fact]
    public async Task ExpiredLeases_AndLostWork_AreHandedBackToTheScheduler_UpToTheAttemptCap()
    {
        var job = await PlannedJobAsync(2);
        ExportWorkItem run = new(job.Id, Plan: false);

        // Planned and enqueued just now: nothing to do. Long after, with nobody holding a lease: the runs were lost.
        Assert.DoesNotContain(run, await Jobs.TakeWorkToEnqueueAsync(Clock.GetUtcNow() - TimeSpan.FromMinutes(2), Ct));
        Clock.Advance(TimeSpan.FromMinutes(5));
        Assert.Contains(run, await Jobs.TakeWorkToEnqueueAsync(Clock.GetUtcNow() - TimeSpan.FromMinutes(2), Ct));
        Assert.DoesNotContain(run, await Jobs.TakeWorkToEnqueueAsync(Clock.GetUtcNow() - TimeSpan.FromMinutes(2), Ct));

        // A live lease means a run is working through the export: no new run, however stale the enqueue.
        var live = await Jobs.ClaimPartitionAsync(job.Id, 1, "w", Lease, 3, Ct);
        Clock.Advance(TimeSpan.FromMinutes(5));
        Assert.True(await Jobs.RenewLeaseAsync(live!, Lease, Ct));
        Assert.DoesNotContain(run, await Jobs.TakeWorkToEnqueueAsync(Clock.GetUtcNow() - TimeSpan.FromMinutes(2), Ct));
        Assert.Equal(PartitionCompletion.Done, await Jobs.CompletePartitionAsync(live!, Ttl, Ct));

        // Each time a holder dies (its lease expires), one new run is enqueued; the attempts are capped.
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            var lease = await Jobs.ClaimPartitionAsync(job.Id, 0, $"w{attempt}", Lease, 3, Ct);
            Assert.NotNull(lease);
            Assert.Equal(attempt, lease!.Attempt);
            Clock.Advance(Lease + TimeSpan.FromSeconds(1));
            Assert.Contains(run, await Jobs.TakeWorkToEnqueueAsync(Clock.GetUtcNow() - TimeSpan.FromMinutes(2), Ct));
            Assert.DoesNotContain(run, await Jobs.TakeWorkToEnqueueAsync(Clock.GetUtcNow() - TimeSpan.FromMinutes(2), Ct));
        }

        Assert.Null(await Jobs.ClaimPartitionAsync(job.Id, 0, "w4", Lease, 3, Ct));
        Assert.Contains(await Jobs.FindAbandonedAsync(3, Ct), a => a.JobId == job.Id && a.PartitionNo == 0);
        await Jobs.FailJobAsync(job.Id, "abandoned", Ttl, Ct);
        var failed = await Jobs.GetJobAsync(job.Id, Ct);
        Assert.Equal((ExportJobStatus.Failed, "abandoned"), (failed!.Status, failed.Error));
    }

    [Fact]
    public async Task AfterARestart_EveryLeaseIsExpired_AndUnfinishedExportsAreEnqueuedAgain()
    {
        var job = await PlannedJobAsync(2);
        var lease = await Jobs.ClaimPartitionAsync(job.Id, null, "dead-process", Lease, 5, Ct);
        await Jobs.ResetAfterRestartAsync(Ct);
        Assert.Contains(new ExportWorkItem(job.Id, Plan: false), await Jobs.TakeWorkToEnqueueAsync(Clock.GetUtcNow() - TimeSpan.FromMinutes(2), Ct));
        var again = await Jobs.ClaimPartitionAsync(job.Id, lease!.PartitionNo, "new-process", Lease, 5, Ct);
        Assert.Equal(lease.Token + 1, again!.Token);
    }

    [Fact]
    public async Task ActiveExports_AreLimitedPerClientAndPerTenant()
    {
        var tenant = Guid.NewGuid().ToString("N");
        Assert.Equal(CreateJobOutcome.Created, await Jobs.CreateJobAsync(NewJob("c1", tenant), 1, 2, Ct));
        Assert.Equal(CreateJobOutcome.ClientLimitReached, await Jobs.CreateJobAsync(NewJob("c1", tenant), 1, 2, Ct));
        var other = NewJob("c2", tenant);
        Assert.Equal(CreateJobOutcome.Created, await Jobs.CreateJobAsync(other, 1, 2, Ct));
        Assert.Equal(CreateJobOutcome.TenantLimitReached, await Jobs.CreateJobAsync(NewJob("c3", tenant), 1, 2, Ct));
        await Jobs.CancelJobAsync(other.Id, Ct);
        Assert.Equal(CreateJobOutcome.Created, await Jobs.CreateJobAsync(NewJob("c3", tenant), 1, 2, Ct));
    }

    [Fact]
    public async Task ConcurrentClaims_OfOnePartition_HaveOneWinner()
    {
        var job = await PlannedJobAsync(1);
        var claims = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Task.Run(() => Jobs.ClaimPartitionAsync(job.Id, 0, $"w{i}", Lease, 5, Ct))));
        Assert.Single(claims, c => c is not null);

        // Racing claims of "any partition" each get a different one.
        var wide = await PlannedJobAsync(4);
        var any = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Task.Run(() => Jobs.ClaimPartitionAsync(wide.Id, null, $"w{i}", Lease, 5, Ct))));
        Assert.Equal([0, 1, 2, 3], any.Where(c => c is not null).Select(c => c!.PartitionNo).Order());
    }
}

public sealed class SqliteJobStoreTests : JobStoreContract
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "helios-jobs-" + Guid.NewGuid().ToString("N")[..12]);

    protected override Task<IExportJobStore> CreateAsync()
    {
        Directory.CreateDirectory(_directory);
        return Task.FromResult<IExportJobStore>(new SqliteExportJobStore(Path.Combine(_directory, "helios.db"), Clock));
    }

    public override Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }
}

public sealed class PostgresJobStoreTests : JobStoreContract
{
    private NpgsqlDataSource? _dataSource;

    protected override async Task<IExportJobStore> CreateAsync()
    {
        var connectionString = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("helios_jobs");
        _dataSource = NpgsqlDataSource.Create(connectionString);
        return new PostgresExportJobStore(_dataSource, Clock);
    }

    public override async Task DisposeAsync()
    {
        if (_dataSource is not null)
        {
            await _dataSource.DisposeAsync();
        }
    }
}
