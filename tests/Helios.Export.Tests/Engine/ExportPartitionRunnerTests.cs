using Task = System.Threading.Tasks.Task;

namespace Helios.Export.Tests.Engine;

public sealed class ExportPartitionRunnerTests
{
    private static CancellationToken Ct => CancellationToken.None;

    [Fact]
    public async Task Run_ExportsEveryResourceExactlyOnce_InPartsBoundedInBytes_AndCompletesTheJob()
    {
        await using var engine = await EngineHarness.CreateAsync(o => o.MaxPartBytes = 600);
        var seeded = await engine.SeedAsync(patients: 4, observationsEach: 4);

        var job = await engine.StartAsync();
        await engine.Runner().RunAsync(job.Id, Ct);

        Assert.Equal(ExportJobStatus.Completed, (await engine.Jobs.GetJobAsync(job.Id, Ct))!.Status);
        var exported = await engine.ExportedKeysAsync(job.Id);
        Assert.Equal(seeded.Order(StringComparer.Ordinal), exported.Order(StringComparer.Ordinal));
        var files = await engine.Jobs.GetFilesAsync(job.Id, Ct);
        Assert.True(files.Count > 5, $"parts are cut at MaxPartBytes: {files.Count} files");
        Assert.All(files, f => Assert.True(f.ByteCount < 600 + 1024, $"{f.FileName} holds {f.ByteCount} bytes"));
    }

    [Theory]
    [InlineData("local")]
    [InlineData("s3")]
    public async Task LeaseLostBeforeCommit_TheStaleRunIsFencedOut_ItsPartRemoved_AndTheNewHolderFinishesWithoutDuplicates(string fileStore)
    {
        await using var engine = fileStore == "s3"
            ? await EngineHarness.CreateWithS3Async(o => o.PartitionRows = 100)
            : await EngineHarness.CreateAsync(o => o.PartitionRows = 100);
        var seeded = await engine.SeedAsync(patients: 1, observationsEach: 5);
        var job = await engine.StartAsync();
        // While the first worker publishes its first part, it stalls past its lease and another worker takes over.
        PartitionLease? thief = null;
        string? stalePart = null;
        engine.Files.BeforePublish = async fileName =>
        {
            if (thief is not null)
            {
                return;
            }

            stalePart = fileName;
            engine.Clock.Advance(engine.Options.LeaseDuration + TimeSpan.FromSeconds(1));
            // Part names are {Type}-{partition}-{part}-{token}.ndjson.
            var partitionNo = int.Parse(fileName.Split('-')[1], System.Globalization.CultureInfo.InvariantCulture);
            thief = await engine.Jobs.ClaimPartitionAsync(job.Id, partitionNo, "thief", engine.Options.LeaseDuration, 5, Ct);
        };

        await engine.Runner().RunAsync(job.Id, Ct);

        Assert.NotNull(thief);
        Assert.NotNull(stalePart);
        // Published but refused at commit: the stale holder deleted its own part, and nothing of it is committed.
        Assert.DoesNotContain(stalePart, await engine.Files.ListAsync(job.Id, Ct));
        Assert.DoesNotContain(await engine.Jobs.GetFilesAsync(job.Id, Ct), f => f.FileName == stalePart);
        Assert.Equal(ExportJobStatus.Running, (await engine.Jobs.GetJobAsync(job.Id, Ct))!.Status);
        Assert.True(await engine.Jobs.RenewLeaseAsync(thief!, engine.Options.LeaseDuration, Ct), "the new holder keeps its lease");

        // The thief dies; once its lease expires a new run finishes the export, every resource exactly once.
        engine.Files.BeforePublish = null;
        engine.Clock.Advance(engine.Options.LeaseDuration + TimeSpan.FromSeconds(1));
        await engine.Runner().RunAsync(job.Id, Ct);

        Assert.Equal(ExportJobStatus.Completed, (await engine.Jobs.GetJobAsync(job.Id, Ct))!.Status);
        Assert.Equal(seeded.Order(StringComparer.Ordinal), (await engine.ExportedKeysAsync(job.Id)).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task WorkerStoppedMidPartition_ANewRunResumesAfterTheLastCommittedPart()
    {
        await using var engine = await EngineHarness.CreateAsync(o =>
        {
            o.PartitionRows = 100;
            o.MaxPartBytes = 400;
        });
        var seeded = await engine.SeedAsync(patients: 1, observationsEach: 8);
        var job = await engine.StartAsync();

        // The worker shuts down while publishing its third part: two parts are committed, the third is discarded.
        using var shutdown = new CancellationTokenSource();
        var publishes = 0;
        engine.Files.BeforePublish = async _ =>
        {
            if (++publishes == 3)
            {
                await shutdown.CancelAsync();
                shutdown.Token.ThrowIfCancellationRequested();
            }
        };
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => engine.Runner().RunAsync(job.Id, shutdown.Token));
        var committed = (await engine.Jobs.GetFilesAsync(job.Id, Ct)).Where(f => f.Kind == ExportFileKinds.Output).ToList();
        Assert.Equal(2, committed.Count);

        engine.Files.BeforePublish = null;
        await engine.Runner().RunAsync(job.Id, Ct);

        Assert.Equal(ExportJobStatus.Completed, (await engine.Jobs.GetJobAsync(job.Id, Ct))!.Status);
        var files = await engine.Jobs.GetFilesAsync(job.Id, Ct);
        // The committed parts were kept as they were (same names, same tokens); the resumed run added the rest.
        Assert.All(committed, c => Assert.Contains(files, f => f.FileName == c.FileName));
        Assert.Equal(seeded.Order(StringComparer.Ordinal), (await engine.ExportedKeysAsync(job.Id)).Order(StringComparer.Ordinal));
        Assert.Equal(files.Select(f => f.FileName).Order(StringComparer.Ordinal), (await engine.Files.ListAsync(job.Id, Ct)).Order(StringComparer.Ordinal));
    }

    /// <summary>A started export of one patient and eight observations, in parts of at most 400 bytes (several per
    /// partition, so something can happen between two of them).</summary>
    private static async Task<(EngineHarness Engine, ExportJob Job)> SmallPartsExportAsync()
    {
        var engine = await EngineHarness.CreateAsync(o =>
        {
            o.PartitionRows = 100;
            o.MaxPartBytes = 400;
        });
        await engine.SeedAsync(patients: 1, observationsEach: 8);
        return (engine, await engine.StartAsync());
    }

    [Fact]
    public async Task CancelledExport_TheRunningPartitionsNextCommitIsRefused_AndItsPartRemoved()
    {
        var (engine, job) = await SmallPartsExportAsync();
        await using var owner = engine;

        string? inFlight = null;
        engine.Files.BeforePublish = async fileName =>
        {
            if (engine.Files.Published.Count == 1 && inFlight is null)
            {
                inFlight = fileName;
                Assert.True(await engine.Jobs.CancelJobAsync(job.Id, Ct));
            }
        };

        await engine.Runner().RunAsync(job.Id, Ct);

        Assert.Equal(ExportJobStatus.Cancelled, (await engine.Jobs.GetJobAsync(job.Id, Ct))!.Status);
        Assert.Single(await engine.Jobs.GetFilesAsync(job.Id, Ct));
        Assert.NotNull(inFlight);
        Assert.DoesNotContain(inFlight, await engine.Files.ListAsync(job.Id, Ct));
    }

    [Fact]
    public async Task CancelledExport_WhoseFilesVanishUnderARunningPartition_EndsItQuietly_WithoutARetry()
    {
        var (engine, job) = await SmallPartsExportAsync();
        await using var owner = engine;

        // The cancel deletes the export's files while a part is being published: the store fails the publish.
        engine.Files.BeforePublish = async _ =>
        {
            if (engine.Files.Published.Count == 1)
            {
                Assert.True(await engine.Jobs.CancelJobAsync(job.Id, Ct));
                await engine.Files.DeleteJobAsync(job.Id, Ct);
                throw new ExportFileStoreException("The export directory could not be written: No such file or directory");
            }
        };
        var logger = new ListLogger<ExportPartitionRunner>();

        await engine.Runner(logger).RunAsync(job.Id, Ct);

        Assert.Equal(ExportJobStatus.Cancelled, (await engine.Jobs.GetJobAsync(job.Id, Ct))!.Status);
        Assert.DoesNotContain(logger.Entries, e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Warning);
        Assert.Contains(logger.Entries, e => e.Message.Contains("the export ended while it ran", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ALongBackoff_EndsTheRun_AndTheSupervisorEnqueuesTheRetryWhenItIsDue()
    {
        await using var engine = await EngineHarness.CreateAsync(o =>
        {
            o.PartitionRows = 1000;
            o.RetryBackoff = TimeSpan.FromSeconds(10);
            o.SupervisorInterval = TimeSpan.FromSeconds(2);
        });
        await engine.SeedAsync(patients: 2, observationsEach: 3);
        var job = await engine.StartAsync();
        var publishes = 0;
        engine.Files.BeforePublish = _ => publishes++ == 0
            ? throw new ExportFileStoreException("The S3 file store did not take the export's files: connection refused")
            : Task.CompletedTask;
        var logger = new ListLogger<ExportPartitionRunner>();

        // The run does not sit on its worker thread for the 10 s backoff (the fake clock never moves on its own: a
        // wait here would never end).
        await engine.Runner(logger).RunAsync(job.Id, Ct).WaitAsync(TimeSpan.FromSeconds(30), Ct);
        Assert.True(publishes >= 1);
        Assert.Equal(ExportJobStatus.Running, (await engine.Jobs.GetJobAsync(job.Id, Ct))!.Status);
        Assert.Contains(logger.Entries, e => e.Message.Contains("next attempt is due in 10.0 s", StringComparison.Ordinal));

        // The supervisor enqueues nothing before the retry is due, and one run when it is.
        var runs = engine.Scheduler.Count("run", job.Id);
        engine.Clock.Advance(TimeSpan.FromSeconds(9));
        await engine.Supervisor().TickAsync(Ct);
        Assert.Equal(runs, engine.Scheduler.Count("run", job.Id));
        engine.Clock.Advance(TimeSpan.FromSeconds(1));
        await engine.Supervisor().TickAsync(Ct);
        Assert.Equal(runs + 1, engine.Scheduler.Count("run", job.Id));

        await engine.Runner().RunAsync(job.Id, Ct);
        Assert.Equal(ExportJobStatus.Completed, (await engine.Jobs.GetJobAsync(job.Id, Ct))!.Status);
        Assert.Equal(2 + 6, (await engine.ExportedKeysAsync(job.Id)).Distinct().Count());
    }

    [Fact]
    public async Task AFailingFileStore_BacksOffBetweenAttempts_DoublingUpToTheMaximum()
    {
        var options = new ExportOptions { RetryBackoff = TimeSpan.FromSeconds(2), MaxRetryBackoff = TimeSpan.FromSeconds(60) };
        Assert.Equal(
            [2, 4, 8, 16, 32, 60, 60],
            Enumerable.Range(1, 7).Select(attempt => ExportPartitionRunner.RetryDelay(options, attempt).TotalSeconds));
    }
}

internal sealed class ListLogger<T> : Microsoft.Extensions.Logging.ILogger<T>
{
    public List<(Microsoft.Extensions.Logging.LogLevel Level, string Message)> Entries { get; } = [];

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

    public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (Entries)
        {
            Entries.Add((logLevel, formatter(state, exception)));
        }
    }
}
