using Helios.Storage;
using Hl7.Fhir.Model;
using Task = System.Threading.Tasks.Task;

namespace Helios.Export.Tests.Engine;

public sealed class ExportPlannerTests
{
    private static CancellationToken Ct => CancellationToken.None;

    [Fact]
    public async Task SystemExport_IsCutIntoKeyRangesPerType_AndFansOutOneRunPerPartitionUpToTheCap()
    {
        await using var engine = await EngineHarness.CreateAsync(o => o.MaxParallelism = 3);
        await engine.SeedAsync(patients: 3, observationsEach: 3);

        var job = await engine.StartAsync();

        Assert.Equal(ExportJobStatus.Running, job.Status);
        var progress = await engine.Jobs.GetProgressAsync(job.Id, Ct);
        // Patient: 3 versions in one range; Observation: 9 versions in ranges of 4, 4 and 1.
        Assert.Equal((4, 12L), (progress.Partitions, progress.EstimatedRows));
        Assert.Equal(1, engine.Scheduler.Count("plan", job.Id));
        Assert.Equal(3, engine.Scheduler.Count("run", job.Id));
    }

    [Fact]
    public async Task PatientExport_PlansOnlyPatientCompartmentTypes()
    {
        await using var engine = await EngineHarness.CreateAsync();
        await engine.SeedAsync(patients: 2, observationsEach: 1);
        await engine.Store.WriteAsync([ResourceWrite.Create(new Organization { Id = "org-1", Name = "Outside every compartment" })], Ct);

        var job = await engine.StartAsync(new ExportRequest { Level = ExportLevel.Patient });
        await engine.Runner().RunAsync(job.Id, Ct);

        Assert.Equal(ExportJobStatus.Completed, (await engine.Jobs.GetJobAsync(job.Id, Ct))!.Status);
        var exported = await engine.ExportedKeysAsync(job.Id);
        Assert.Equal(["Observation/p0-o0", "Observation/p1-o0", "Patient/p0", "Patient/p1"], exported.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task GroupExport_ResolvesActiveMembersAndNestedGroupsAtTheSnapshot()
    {
        await using var engine = await EngineHarness.CreateAsync();
        await engine.SeedAsync(patients: 5, observationsEach: 1);
        var past = new Period { End = "2020-01-01" };
        await engine.Store.WriteAsync(
        [
            ResourceWrite.Create(new Group { Id = "inner", Type = Group.GroupType.Person, Actual = true, Member = [new() { Entity = new ResourceReference("Patient/p3") }] }),
            ResourceWrite.Create(new Group
            {
                Id = "outer",
                Type = Group.GroupType.Person,
                Actual = true,
                Member =
                [
                    new() { Entity = new ResourceReference("Patient/p0") },
                    new() { Entity = new ResourceReference("Patient/p1"), Inactive = true },
                    new() { Entity = new ResourceReference("Patient/p2"), Period = past },
                    new() { Entity = new ResourceReference("Group/inner") },
                ],
            }),
        ], Ct);

        var job = await engine.Kickoff().StartAsync(new ExportRequest { Level = ExportLevel.Group, GroupId = "outer" }, "t", "client", "http://h/Group/outer/$export", "http://h", Ct);
        // Changed after the kick-off: the export still sees the Group as it was at its snapshot.
        await engine.Store.WriteAsync([ResourceWrite.Delete("Group", "outer")], Ct);
        await engine.Planner().PlanAsync(job.Id, Ct);
        await engine.Runner().RunAsync(job.Id, Ct);

        var exported = await engine.ExportedKeysAsync(job.Id);
        // Groups are in their members' compartments (Group.member): both are exported as they were at the snapshot.
        Assert.Equal(["Group/inner", "Group/outer", "Observation/p0-o0", "Observation/p3-o0", "Patient/p0", "Patient/p3"], exported.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task UnknownGroup_IsRefusedAtKickoff()
    {
        await using var engine = await EngineHarness.CreateAsync();
        var refused = await Assert.ThrowsAsync<ExportGroupNotFoundException>(() =>
            engine.Kickoff().StartAsync(new ExportRequest { Level = ExportLevel.Group, GroupId = "nope" }, "t", "client", "http://h", "http://h", Ct));
        Assert.Contains("Group/nope", refused.Message, StringComparison.Ordinal);
        Assert.Empty(engine.Scheduler.Enqueued);
    }

    [Fact]
    public async Task KickoffsOverTheClientCap_AreThrottledWithRetryAfter()
    {
        await using var engine = await EngineHarness.CreateAsync(o => o.MaxActivePerClient = 1);
        await engine.Kickoff().StartAsync(new ExportRequest { Level = ExportLevel.System }, "t", "client", "http://h", "http://h", Ct);
        var refused = await Assert.ThrowsAsync<ExportThrottledException>(() =>
            engine.Kickoff().StartAsync(new ExportRequest { Level = ExportLevel.System }, "t", "client", "http://h", "http://h", Ct));
        Assert.True(refused.RetryAfter > TimeSpan.Zero);
        // Another client is not affected.
        await engine.Kickoff().StartAsync(new ExportRequest { Level = ExportLevel.System }, "t", "other", "http://h", "http://h", Ct);
    }
}
