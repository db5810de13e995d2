using System.Collections.Concurrent;
using System.Net;
using System.Reflection;
using Helios.Api.Export;
using Helios.Export;
using Helios.Export.Adapters.JobStores;
using Helios.Export.Requests;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Helios.Api.Tests;

/// <summary>
/// Status polls share what they read (ADR 0016): one read of a job per interval however many polls, a change seen
/// once the interval has passed, a cancel here seen at once, a failed read never kept. Over the real SQLite job
/// store, on a fake clock that moves only when told.
/// </summary>
public sealed class ExportStatusCacheTests : IAsyncLifetime
{
    private static readonly TimeSpan Ttl = TimeSpan.FromMilliseconds(250);
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "helios-status-" + Guid.NewGuid().ToString("N")[..12]);
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly ExportOptions _options = new() { StatusCacheTtl = Ttl };
    private IExportJobStore _store = null!;
    private CountingJobStore _counts = null!;
    private ExportStatusCache _cache = null!;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        _store = new SqliteExportJobStore(Path.Combine(_directory, "helios.db"), _clock);
        await _store.MigrateAsync(CancellationToken.None);
        var proxy = DispatchProxy.Create<IExportJobStore, CountingJobStore>();
        _counts = (CountingJobStore)proxy;
        _counts.Target = _store;
        _cache = new ExportStatusCache(proxy, _clock, Options.Create(_options), new RunningHost());
    }

    public Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task ManyPolls_ShareOneRead_PerInterval()
    {
        var job = await RunningJobAsync();

        var statuses = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => _cache.GetAsync(job.Id, CancellationToken.None)));
        Assert.All(statuses, s => Assert.Equal(ExportJobStatus.Running, s.Job!.Status));
        Assert.All(statuses, s => Assert.Equal(2, s.Progress!.Partitions));
        Assert.Equal(1, _counts.Calls("GetJobAsync"));
        Assert.Equal(1, _counts.Calls("GetProgressAsync"));

        _clock.Advance(Ttl - TimeSpan.FromMilliseconds(1));
        await _cache.GetAsync(job.Id, CancellationToken.None);
        Assert.Equal(1, _counts.Calls("GetJobAsync"));

        _clock.Advance(TimeSpan.FromMilliseconds(1));
        await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => _cache.GetAsync(job.Id, CancellationToken.None)));
        Assert.Equal(2, _counts.Calls("GetJobAsync"));
        Assert.Equal(2, _counts.Calls("GetProgressAsync"));
    }

    [Fact]
    public async Task AChangeMadeElsewhere_IsSeenOnceTheIntervalHasPassed()
    {
        var job = await RunningJobAsync();
        Assert.Equal(ExportJobStatus.Running, (await _cache.GetAsync(job.Id, CancellationToken.None)).Job!.Status);

        // Another Api cancels it.
        Assert.True(await _store.CancelJobAsync(job.Id, CancellationToken.None));
        Assert.Equal(ExportJobStatus.Running, (await _cache.GetAsync(job.Id, CancellationToken.None)).Job!.Status);

        _clock.Advance(Ttl);
        var seen = await _cache.GetAsync(job.Id, CancellationToken.None);
        Assert.Equal(ExportJobStatus.Cancelled, seen.Job!.Status);
        Assert.Null(seen.Progress);
    }

    [Fact]
    public async Task Forget_MakesTheNextPollReadAfresh()
    {
        var job = await RunningJobAsync();
        await _cache.GetAsync(job.Id, CancellationToken.None);
        Assert.True(await _store.CancelJobAsync(job.Id, CancellationToken.None));

        _cache.Forget(job.Id);

        Assert.Equal(ExportJobStatus.Cancelled, (await _cache.GetAsync(job.Id, CancellationToken.None)).Job!.Status);
        Assert.Equal(2, _counts.Calls("GetJobAsync"));
    }

    [Fact]
    public async Task AnUnknownJob_IsReadAsNone_AndAnIntervalOfZero_ReadsOnEveryPoll()
    {
        Assert.Null((await _cache.GetAsync("no-such-job", CancellationToken.None)).Job);

        _options.StatusCacheTtl = TimeSpan.Zero;
        var job = await RunningJobAsync();
        for (var i = 0; i < 5; i++)
        {
            await _cache.GetAsync(job.Id, CancellationToken.None);
        }

        Assert.Equal(6, _counts.Calls("GetJobAsync"));
        _cache.SetManifest(job.Id, "http://h", [1, 2, 3], DateTimeOffset.MaxValue);
        Assert.Null(_cache.GetManifest(job.Id, "http://h"));
    }

    [Fact]
    public async Task AFailedRead_ReachesItsPolls_AndIsNotKept()
    {
        var job = await RunningJobAsync();
        _counts.FailNext("GetJobAsync", new TimeoutException("the database did not answer"));

        await Assert.ThrowsAsync<TimeoutException>(() => _cache.GetAsync(job.Id, CancellationToken.None));

        // Within the same interval: a new read, not the failure again.
        Assert.Equal(ExportJobStatus.Running, (await _cache.GetAsync(job.Id, CancellationToken.None)).Job!.Status);
        Assert.Equal(2, _counts.Calls("GetJobAsync"));
    }

    [Fact]
    public async Task APollThatGivesUp_DoesNotFailTheOthersWaitingOnTheSameRead()
    {
        var job = await RunningJobAsync();
        var release = _counts.HoldNext("GetJobAsync");
        using var gaveUp = new CancellationTokenSource();
        var first = _cache.GetAsync(job.Id, gaveUp.Token);
        var second = _cache.GetAsync(job.Id, CancellationToken.None);

        await gaveUp.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        Assert.False(second.IsCompleted);

        release.SetResult();
        Assert.Equal(ExportJobStatus.Running, (await second).Job!.Status);
        Assert.Equal(1, _counts.Calls("GetJobAsync"));
    }

    [Fact]
    public void AManifest_IsServedUntilItsValidity_PerKey_AndForgetDropsIt()
    {
        var until = _clock.GetUtcNow().AddMinutes(1);
        _cache.SetManifest("job-1", "http://a", [1], until);
        _cache.SetManifest("job-1", "http://b", [2], until);
        _cache.SetManifest("job-2", "http://a", [3], until);

        Assert.Equal([1], _cache.GetManifest("job-1", "http://a"));
        Assert.Equal([2], _cache.GetManifest("job-1", "http://b"));
        Assert.Null(_cache.GetManifest("job-1", "http://c"));

        _cache.Forget("job-1");
        Assert.Null(_cache.GetManifest("job-1", "http://a"));
        Assert.Null(_cache.GetManifest("job-1", "http://b"));
        Assert.Equal([3], _cache.GetManifest("job-2", "http://a"));

        _clock.Advance(TimeSpan.FromMinutes(1));
        Assert.Null(_cache.GetManifest("job-2", "http://a"));
    }

    private async Task<ExportJob> RunningJobAsync()
    {
        var job = new ExportJob(
            Guid.NewGuid().ToString("N"), "t1", "client-a", ExportJobStatus.Accepted, new ExportRequest { Level = ExportLevel.System, Types = ["Patient"] },
            "http://h/$export", "http://h", _clock.GetUtcNow(), 100, _clock.GetUtcNow(), null, null, null);
        Assert.Equal(CreateJobOutcome.Created, await _store.CreateJobAsync(job, 10, 100, CancellationToken.None));
        ExportPartitionPlan[] plan = [new(0, "Patient", 0, 10, 10), new(1, "Patient", 10, 20, 10)];
        Assert.True(await _store.SavePlanAsync(job.Id, plan, [], TimeSpan.FromHours(1), CancellationToken.None));
        return job;
    }

    /// <summary>The real job store, with its calls counted and a failure injected on request.</summary>
    public class CountingJobStore : DispatchProxy
    {
        private readonly ConcurrentDictionary<string, int> _calls = new();
        private readonly ConcurrentDictionary<string, Exception> _failNext = new();
        private readonly ConcurrentDictionary<string, TaskCompletionSource> _holdNext = new();

        public IExportJobStore Target { get; set; } = null!;

        public int Calls(string method) => _calls.GetValueOrDefault(method);

        public void FailNext(string method, Exception exception) => _failNext[method] = exception;

        /// <summary>The next call of <paramref name="method"/> (a <c>Task&lt;T&gt;</c>) waits until the returned source is set.</summary>
        public TaskCompletionSource HoldNext(string method)
        {
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _holdNext[method] = gate;
            return gate;
        }

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            ArgumentNullException.ThrowIfNull(targetMethod);
            _calls.AddOrUpdate(targetMethod.Name, 1, (_, n) => n + 1);
            if (_failNext.TryRemove(targetMethod.Name, out var exception))
            {
                throw exception;
            }

            if (_holdNext.TryRemove(targetMethod.Name, out var gate))
            {
                var result = targetMethod.ReturnType.GetGenericArguments()[0];
                return typeof(CountingJobStore).GetMethod(nameof(AfterAsync), BindingFlags.NonPublic | BindingFlags.Static)!
                    .MakeGenericMethod(result).Invoke(null, [gate.Task, (Func<object?>)(() => targetMethod.Invoke(Target, args))]);
            }

            return targetMethod.Invoke(Target, args);
        }

        private static async Task<T> AfterAsync<T>(Task gate, Func<object?> call)
        {
            await gate;
            return await (Task<T>)call()!;
        }
    }

    private sealed class RunningHost : IHostApplicationLifetime
    {
        public CancellationToken ApplicationStarted => CancellationToken.None;

        public CancellationToken ApplicationStopping => CancellationToken.None;

        public CancellationToken ApplicationStopped => CancellationToken.None;

        public void StopApplication()
        {
        }
    }
}

/// <summary>A cancel through this Api is seen by its next poll at once, though the fake clock never lets the shared
/// read of the job expire.</summary>
public sealed class StatusCacheCancelTests(FakeClockEmbeddedFactory factory) : IClassFixture<FakeClockEmbeddedFactory>
{
    [Fact]
    public async Task ACancelThroughThisApi_IsSeenByTheNextPoll()
    {
        var client = new ExportClient(factory.CreateClient());
        await ExportSeed.WriteAsync(factory, new Hl7.Fhir.Model.Patient { Id = "cache-cancel-p" });
        var statusUrl = await client.KickoffAsync("/$export?_type=Patient");
        Assert.Equal(HttpStatusCode.Accepted, (await client.PollAsync(statusUrl)).StatusCode);

        Assert.Equal(HttpStatusCode.Accepted, (await client.Api.DeleteAsync(statusUrl)).StatusCode);

        Assert.Equal(HttpStatusCode.NotFound, (await client.PollAsync(statusUrl)).StatusCode);
    }
}
