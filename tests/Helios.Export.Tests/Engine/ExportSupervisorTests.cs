using Task = System.Threading.Tasks.Task;

namespace Helios.Export.Tests.Engine;

/// <summary>The supervisor driven tick by tick on a fake clock.</summary>
public sealed class ExportSupervisorTests
{
    private static CancellationToken Ct => CancellationToken.None;

    [Fact]
    public async Task AnExpiredLease_GetsANewRun_AndThatRunFinishesTheExport()
    {
        await using var engine = await EngineHarness.CreateAsync(o => o.PartitionRows = 100);
        var seeded = await engine.SeedAsync(patients: 2, observationsEach: 2);
        var job = await engine.StartAsync();
        var supervisor = engine.Supervisor();
        var runsAtStart = engine.Scheduler.Count("run", job.Id);

        // A worker claims a partition and dies without a word.
        Assert.NotNull(await engine.Jobs.ClaimPartitionAsync(job.Id, null, "dead-worker", engine.Options.LeaseDuration, 5, Ct));
        await supervisor.TickAsync(Ct);
        Assert.Equal(runsAtStart, engine.Scheduler.Count("run", job.Id));

        engine.Clock.Advance(engine.Options.LeaseDuration + TimeSpan.FromSeconds(1));
        await supervisor.TickAsync(Ct);
        Assert.Equal(runsAtStart + 1, engine.Scheduler.Count("run", job.Id));

        await engine.Runner().RunAsync(job.Id, Ct);
        Assert.Equal(ExportJobStatus.Completed, (await engine.Jobs.GetJobAsync(job.Id, Ct))!.Status);
        Assert.Equal(seeded.Order(StringComparer.Ordinal), (await engine.ExportedKeysAsync(job.Id)).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task AnExportWhosePlanWasLost_IsPlannedAgainAfterRequeueAfter()
    {
        await using var engine = await EngineHarness.CreateAsync();
        var job = await engine.Kickoff().StartAsync(new ExportRequest { Level = ExportLevel.System }, "t", "client", "http://h", "http://h", Ct);
        var supervisor = engine.Supervisor();

        await supervisor.TickAsync(Ct);
        Assert.Equal(1, engine.Scheduler.Count("plan", job.Id));

        engine.Clock.Advance(engine.Options.RequeueAfter + TimeSpan.FromSeconds(1));
        await supervisor.TickAsync(Ct);
        Assert.Equal(2, engine.Scheduler.Count("plan", job.Id));
    }

    [Fact]
    public async Task AFinishedExportPastItsTtl_IsDeleted_FilesThenRows()
    {
        await using var engine = await EngineHarness.CreateAsync();
        await engine.SeedAsync(patients: 1, observationsEach: 1);
        var job = await engine.StartAsync();
        await engine.Runner().RunAsync(job.Id, Ct);
        Assert.NotEmpty(await engine.Files.ListAsync(job.Id, Ct));
        var supervisor = engine.Supervisor();

        engine.Clock.Advance(engine.Options.OutputTtl - TimeSpan.FromSeconds(1));
        await supervisor.TickAsync(Ct);
        Assert.NotNull(await engine.Jobs.GetJobAsync(job.Id, Ct));

        engine.Clock.Advance(TimeSpan.FromSeconds(2));
        await supervisor.TickAsync(Ct);
        Assert.Null(await engine.Jobs.GetJobAsync(job.Id, Ct));
        Assert.Empty(await engine.Files.ListAsync(job.Id, Ct));
    }

    [Fact]
    public async Task APartitionThatUsedUpItsAttempts_FailsTheExportWithItsLastError()
    {
        await using var engine = await EngineHarness.CreateAsync(o =>
        {
            o.PartitionRows = 100;
            o.MaxAttempts = 2;
        });
        await engine.SeedAsync(patients: 1, observationsEach: 0);
        var job = await engine.StartAsync();
        for (var attempt = 0; attempt < 2; attempt++)
        {
            var lease = (await engine.Jobs.ClaimPartitionAsync(job.Id, null, "w", engine.Options.LeaseDuration, engine.Options.MaxAttempts, Ct))!;
            await engine.Jobs.ReleasePartitionAsync(lease, "disk on fire", TimeSpan.Zero, Ct);
        }

        await engine.Supervisor().TickAsync(Ct);

        var failed = (await engine.Jobs.GetJobAsync(job.Id, Ct))!;
        Assert.Equal(ExportJobStatus.Failed, failed.Status);
        Assert.Contains("disk on fire", failed.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AfterARestartOfTheEmbeddedProcess_EveryLeaseIsExpiredAndTheWorkRequeued()
    {
        await using var engine = await EngineHarness.CreateAsync(o => o.PartitionRows = 100);
        await engine.SeedAsync(patients: 1, observationsEach: 1);
        var job = await engine.StartAsync();
        Assert.NotNull(await engine.Jobs.ClaimPartitionAsync(job.Id, null, "previous-process", engine.Options.LeaseDuration, 5, Ct));
        var runs = engine.Scheduler.Count("run", job.Id);

        await engine.Jobs.ResetAfterRestartAsync(Ct);
        await engine.Supervisor(resetLeasesOnStartup: true).TickAsync(Ct);

        Assert.True(engine.Scheduler.Count("run", job.Id) > runs);
        await engine.Runner().RunAsync(job.Id, Ct);
        Assert.Equal(ExportJobStatus.Completed, (await engine.Jobs.GetJobAsync(job.Id, Ct))!.Status);
    }
}
