using System.Text.Json;
using Helios.Storage.Indexing;
using Helios.Storage.Loading;
using Helios.Storage.Search;
using Helios.Storage.Synthetic;
using Hl7.Fhir.Model;
using Task = System.Threading.Tasks.Task;

namespace Helios.Storage.Tests;

/// <summary>The store contract, written once and run against SQLite and PostgreSQL.</summary>
public abstract class ResourceStoreContract : IAsyncLifetime
{
    protected static readonly SearchParameterRegistry Registry = SearchParameterRegistry.Instance;
    protected static readonly IndexExtractor Extractor = new(Registry);
    private readonly SearchQueryParser _parser = new(Registry);

    protected IResourceStore Store { get; private set; } = null!;

    /// <summary>The export reads over <see cref="Store"/>.</summary>
    protected Helios.Storage.Sql.SqlExportSource Source { get; private set; } = null!;

    protected abstract Task<IResourceStore> CreateStoreAsync();

    protected abstract Helios.Storage.Sql.SqlExportSource CreateSource(IResourceStore store);

    public async Task InitializeAsync()
    {
        Store = await CreateStoreAsync();
        Source = CreateSource(Store);
    }

    public virtual Task DisposeAsync() => Task.CompletedTask;

    private static CancellationToken Ct => CancellationToken.None;

    private async Task<SearchResult> Search(string type, string query, int count = 100)
    {
        var pairs = query.Split('&', StringSplitOptions.RemoveEmptyEntries).Select(p =>
        {
            var eq = p.IndexOf('=');
            return new KeyValuePair<string, string>(Uri.UnescapeDataString(p[..eq]), Uri.UnescapeDataString(p[(eq + 1)..]));
        });
        var parsed = _parser.Parse(type, pairs, strict: true, defaultCount: count);
        return await Store.SearchAsync(parsed.Query, Ct);
    }

    private async Task<HashSet<string>> Ids(string type, string query)
    {
        var ids = new HashSet<string>();
        string? cursor = null;
        do
        {
            var q = query + (cursor is null ? string.Empty : "&_cursor=" + cursor);
            var page = await Search(type, q, 7);
            foreach (var m in page.Matches)
            {
                Assert.True(ids.Add(m.Id), $"{m.Id} returned twice across pages");
            }

            cursor = page.NextCursor;
        }
        while (cursor is not null);
        return ids;
    }

    private static Patient NewPatient(string id, string family = "Doe") =>
        new() { Id = id, Name = [new HumanName { Family = family, Given = ["Jo"] }], Gender = AdministrativeGender.Female, BirthDate = "1980-05-17" };

    [Fact]
    public async Task Create_AssignsVersionAndLastUpdated_AndReadReturnsStoredJson()
    {
        var outcome = (await Store.WriteAsync([ResourceWrite.Create(NewPatient("p1"))], Ct)).Single();
        Assert.Equal(WriteStatus.Created, outcome.Status);
        var read = await Store.ReadAsync("Patient", "p1", Ct);
        Assert.NotNull(read);
        Assert.Equal(1, read.VersionId);
        Assert.False(read.IsDeleted);
        using var doc = JsonDocument.Parse(read.Json);
        Assert.Equal("p1", doc.RootElement.GetProperty("id").GetString());
        Assert.Equal("1", doc.RootElement.GetProperty("meta").GetProperty("versionId").GetString());
        var lastUpdated = DateTimeOffset.Parse(doc.RootElement.GetProperty("meta").GetProperty("lastUpdated").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(read.LastUpdated, lastUpdated);
    }

    [Fact]
    public async Task UpdateAndDelete_KeepHistory_AndWriteTombstone()
    {
        await Store.WriteAsync([ResourceWrite.Create(NewPatient("p2", "One"))], Ct);
        await Store.WriteAsync([ResourceWrite.Update(NewPatient("p2", "Two"))], Ct);
        var deleted = (await Store.WriteAsync([ResourceWrite.Delete("Patient", "p2")], Ct)).Single();
        Assert.Equal(WriteStatus.Deleted, deleted.Status);
        Assert.Equal(3, deleted.Resource!.VersionId);

        var current = await Store.ReadAsync("Patient", "p2", Ct);
        Assert.True(current!.IsDeleted);
        var v1 = await Store.ReadVersionAsync("Patient", "p2", 1, Ct);
        Assert.Contains("\"One\"", v1!.Json);
        var v2 = await Store.ReadVersionAsync("Patient", "p2", 2, Ct);
        Assert.Contains("\"Two\"", v2!.Json);

        var history = await Store.HistoryAsync(new HistoryQuery("Patient", "p2", null, 10, null), Ct);
        Assert.Equal([3, 2, 1], history.Select(h => h.VersionId));
        Assert.True(history[0].LastUpdated > history[1].LastUpdated && history[1].LastUpdated > history[2].LastUpdated);

        // A deleted resource is not found by search, and deleting again writes nothing.
        Assert.Empty((await Search("Patient", "_id=p2")).Matches);
        var again = (await Store.WriteAsync([ResourceWrite.Delete("Patient", "p2")], Ct)).Single();
        Assert.Equal(WriteStatus.NothingToDelete, again.Status);

        // Update after delete revives it as version 4.
        var revived = (await Store.WriteAsync([ResourceWrite.Update(NewPatient("p2", "Three"))], Ct)).Single();
        Assert.Equal(4, revived.Resource!.VersionId);
        Assert.Single((await Search("Patient", "_id=p2")).Matches);
    }

    [Fact]
    public async Task EmptySearchValues_AreIgnored_OnEveryParameterKind()
    {
        await Store.WriteAsync([ResourceWrite.Create(NewPatient("empty-1")), ResourceWrite.Create(NewPatient("empty-2"))], Ct);
        var all = await Ids("Patient", "_count=7");
        Assert.Contains("empty-1", all);

        // An empty value (or only separators) constrains nothing, for the special parameters as for the indexed ones;
        // PostgreSQL refused the empty lists these used to make ("IN ()").
        foreach (var query in new[] { "_id=", "_id=,", "_lastUpdated=", "_lastUpdated=,,", "name=", "gender=", "birthdate=", "_id=&_lastUpdated=&name=" })
        {
            Assert.Equal(all, await Ids("Patient", query));
        }

        Assert.Equal(["empty-2"], await Ids("Patient", "_id=,empty-2,"));
    }

    [Fact]
    public async Task ApproximateDate_IsWidenedRelativeToTheParsersClock()
    {
        Patient Born(string id, string date) => new() { Id = id, BirthDate = date };
        await Store.WriteAsync([ResourceWrite.Create(Born("ap-1", "2020-01-01")), ResourceWrite.Create(Born("ap-2", "2021-06-01"))], Ct);
        async Task<string[]> Approximately(string date, int clockYear)
        {
            var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(clockYear, 1, 10, 0, 0, 0, TimeSpan.Zero));
            var parsed = new SearchQueryParser(Registry, clock).Parse("Patient", [new("birthdate", "ap" + date), new("_id", "ap-1,ap-2")], strict: true, defaultCount: 10);
            return [.. (await Store.SearchAsync(parsed.Query, Ct)).Matches.Select(m => m.Id).Order(StringComparer.Ordinal)];
        }

        // Ten years before the clock, "ap" spans 10% of that (a year) either side: 9 days off matches, 17 months not.
        Assert.Equal(["ap-1"], await Approximately("2020-01-10", 2030));
        // Thirty years before it, 10% is three years: both match.
        Assert.Equal(["ap-1", "ap-2"], await Approximately("2020-01-10", 2050));
        // With the clock on the value itself, the floor of one day applies: neither is within it.
        Assert.Empty(await Approximately("2020-01-10", 2020));
    }

    [Fact]
    public async Task FailedPrecondition_InBatch_WritesNothing()
    {
        await Store.WriteAsync([ResourceWrite.Create(NewPatient("p3"))], Ct);
        var before = await Store.GetLastSeqAsync(Ct);
        var ex = await Assert.ThrowsAsync<ResourceConflictException>(() => Store.WriteAsync(
            [ResourceWrite.Create(NewPatient("p4")), ResourceWrite.Update(NewPatient("p3", "X"), ifMatchVersion: 7)], Ct));
        Assert.Equal(1, ex.WriteIndex);
        Assert.True(ex.IsVersionMismatch);
        Assert.Null(await Store.ReadAsync("Patient", "p4", Ct));
        Assert.Equal(before, await Store.GetLastSeqAsync(Ct));
        Assert.Equal(1, (await Store.ReadAsync("Patient", "p3", Ct))!.VersionId);

        // A refused single write, or a delete of nothing, leaves even the clock as it was.
        var clock = await Store.GetLastTimestampAsync(Ct);
        await Assert.ThrowsAsync<ResourceConflictException>(() => Store.WriteAsync([ResourceWrite.Create(NewPatient("p3"))], Ct));
        await Assert.ThrowsAsync<ResourceConflictException>(() => Store.WriteAsync([ResourceWrite.Update(NewPatient("p3", "X"), ifMatchVersion: 7)], Ct));
        Assert.Equal(WriteStatus.NothingToDelete, (await Store.WriteAsync([ResourceWrite.Delete("Patient", "p-none")], Ct)).Single().Status);
        Assert.Equal(clock, await Store.GetLastTimestampAsync(Ct));
        Assert.Equal(before, await Store.GetLastSeqAsync(Ct));
        var ok = (await Store.WriteAsync([ResourceWrite.Update(NewPatient("p3", "Y"), ifMatchVersion: 1)], Ct)).Single();
        Assert.Equal(2, ok.Resource!.VersionId);
    }

    [Fact]
    public async Task SingleWritesQueuedTogether_AreOneGroup_EachWithItsOwnOutcome()
    {
        await Store.WriteAsync([ResourceWrite.Create(NewPatient("g-existing"))], Ct);
        await Store.WriteAsync([ResourceWrite.Create(NewPatient("g-doomed"))], Ct);
        var before = await Store.GetLastSeqAsync(Ct);

        Task<IReadOnlyList<WriteOutcome>>[] writes;
        await using (await Store.HoldWriterTurnAsync(Ct))
        {
            writes =
            [
                Store.WriteAsync([ResourceWrite.Create(NewPatient("g-new-1"))], Ct),
                Store.WriteAsync([ResourceWrite.Create(NewPatient("g-existing"))], Ct), // 409 alone
                Store.WriteAsync([ResourceWrite.Update(NewPatient("g-existing", "A"), ifMatchVersion: 1)], Ct),
                Store.WriteAsync([ResourceWrite.Update(NewPatient("g-existing", "B"), ifMatchVersion: 1)], Ct), // 412: the one before made v2
                Store.WriteAsync([ResourceWrite.Update(NewPatient("g-existing", "C"), ifMatchVersion: 2)], Ct),
                Store.WriteAsync([ResourceWrite.Delete("Patient", "g-nothing")], Ct),
                Store.WriteAsync([ResourceWrite.Delete("Patient", "g-doomed")], Ct),
                Store.WriteAsync([ResourceWrite.Create(NewPatient("g-new-2"))], Ct),
            ];
            await Task.Delay(50, Ct);
            Assert.All(writes, w => Assert.False(w.IsCompleted));
        }

        var created = (await writes[0]).Single();
        Assert.Equal(WriteStatus.Created, created.Status);
        var exists = await Assert.ThrowsAsync<ResourceConflictException>(() => writes[1]);
        Assert.False(exists.IsVersionMismatch);
        Assert.Equal(0, exists.WriteIndex);
        Assert.Equal(2, (await writes[2]).Single().Resource!.VersionId);
        var stale = await Assert.ThrowsAsync<ResourceConflictException>(() => writes[3]);
        Assert.True(stale.IsVersionMismatch);
        Assert.Contains("current version is 2", stale.Message, StringComparison.Ordinal);
        Assert.Equal(3, (await writes[4]).Single().Resource!.VersionId);
        Assert.Equal(WriteStatus.NothingToDelete, (await writes[5]).Single().Status);
        Assert.Equal(WriteStatus.Deleted, (await writes[6]).Single().Status);
        var last = (await writes[7]).Single();

        // One transaction for all eight, in the order they came: five new versions with consecutive keys and times.
        Assert.Equal(8, Store.LargestWriteGroup());
        Assert.Equal(before + 5, await Store.GetLastSeqAsync(Ct));
        Assert.True(last.Resource!.Seq > created.Resource!.Seq);
        var current = (await Store.ReadAsync("Patient", "g-existing", Ct))!;
        Assert.Equal(3, current.VersionId);
        Assert.Contains("\"C\"", current.Json, StringComparison.Ordinal);
        Assert.True((await Store.ReadAsync("Patient", "g-doomed", Ct))!.IsDeleted);
        Assert.NotNull(await Store.ReadAsync("Patient", "g-new-2", Ct));
    }

    /// <summary>Makes the database refuse any token index row with this code (a trigger).</summary>
    protected abstract Task RefuseTokenCodeAsync(string code);

    [Fact]
    public async Task AWriteTheDatabaseRefuses_FailsAlone_ItsGroupIsWrittenWithoutIt()
    {
        await RefuseTokenCodeAsync("other");
        var before = await Store.GetLastSeqAsync(Ct);
        Task<IReadOnlyList<WriteOutcome>> first, refused, third;
        await using (await Store.HoldWriterTurnAsync(Ct))
        {
            first = Store.WriteAsync([ResourceWrite.Create(NewPatient("g-first"))], Ct);
            refused = Store.WriteAsync([ResourceWrite.Create(new Patient { Id = "g-refused", Gender = AdministrativeGender.Other })], Ct);
            third = Store.WriteAsync([ResourceWrite.Create(NewPatient("g-third"))], Ct);
            await Task.Delay(50, Ct);
        }

        var error = await Assert.ThrowsAnyAsync<Exception>(() => refused);
        Assert.Contains("refused by the test", error.Message, StringComparison.Ordinal);
        Assert.Equal(WriteStatus.Created, (await first).Single().Status);
        Assert.Equal(WriteStatus.Created, (await third).Single().Status);
        Assert.Equal(3, Store.LargestWriteGroup());
        Assert.Equal(before + 2, await Store.GetLastSeqAsync(Ct));
        Assert.Null(await Store.ReadAsync("Patient", "g-refused", Ct));
        Assert.NotNull(await Store.ReadAsync("Patient", "g-third", Ct));
    }

    [Fact]
    public async Task AQueuedWrite_WhoseCallerGaveUp_IsNotWritten()
    {
        using var gaveUp = new CancellationTokenSource();
        Task<IReadOnlyList<WriteOutcome>> abandoned, kept;
        await using (await Store.HoldWriterTurnAsync(Ct))
        {
            abandoned = Store.WriteAsync([ResourceWrite.Create(NewPatient("g-abandoned"))], gaveUp.Token);
            kept = Store.WriteAsync([ResourceWrite.Create(NewPatient("g-kept"))], Ct);
            await gaveUp.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
        }

        Assert.Equal(WriteStatus.Created, (await kept).Single().Status);
        Assert.Null(await Store.ReadAsync("Patient", "g-abandoned", Ct));
    }

    [Fact]
    public async Task KeysAndTimestamps_StrictlyIncrease_AcrossConcurrentWriters()
    {
        var tasks = Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < 10; i++)
            {
                await Store.WriteAsync([ResourceWrite.Update(NewPatient($"c{w}-{i}")), ResourceWrite.Update(NewPatient($"c{w}-{i}b"))], Ct);
            }
        }));
        await Task.WhenAll(tasks);
        var history = await Store.HistoryAsync(new HistoryQuery("Patient", null, null, 1000, null), Ct);
        Assert.Equal(160, history.Count);
        for (var i = 1; i < history.Count; i++)
        {
            Assert.True(history[i - 1].Seq > history[i].Seq);
            Assert.True(history[i - 1].LastUpdated > history[i].LastUpdated);
        }
    }

    [Fact]
    public async Task Bulk_LoadsSyntheticData_AndSearchesMatchTheGenerator()
    {
        var generator = new SyntheticDataGenerator(seed: 7);
        var resources = generator.Generate(20).ToList();
        var loader = new NdjsonBulkLoader(Store, Extractor) { BatchSize = 50 };
        var result = await loader.LoadResourcesAsync(resources, Ct);
        Assert.Equal(resources.Count, result.Loaded);

        var counts = await Store.CountByTypeAsync(Ct);
        foreach (var group in resources.GroupBy(r => r.TypeName))
        {
            Assert.Equal(group.Count(), counts[group.Key]);
        }

        var observations = resources.OfType<Observation>().ToList();

        // token: code, system|code, |code miss
        var heartRate = observations.Where(o => o.Code.Coding[0].Code == "8867-4").Select(o => o.Id).ToHashSet();
        Assert.Equal(heartRate, await Ids("Observation", "code=8867-4"));
        Assert.Equal(heartRate, await Ids("Observation", "code=http://loinc.org|8867-4"));
        Assert.Empty(await Ids("Observation", "code=http://snomed.info/sct|8867-4"));
        Assert.Equal(observations.Count - heartRate.Count, (await Ids("Observation", "code:not=8867-4")).Count);

        // OR within a parameter, AND across parameters
        var twoCodes = observations.Where(o => o.Code.Coding[0].Code is "8867-4" or "2339-0").Select(o => o.Id).ToHashSet();
        Assert.Equal(twoCodes, await Ids("Observation", "code=8867-4,2339-0"));
        var patient0 = SyntheticDataGenerator.PatientId(0);
        Assert.Equal(
            observations.Where(o => o.Code.Coding[0].Code == "8867-4" && o.Subject.Reference == "Patient/" + patient0).Select(o => o.Id).ToHashSet(),
            await Ids("Observation", $"code=8867-4&subject=Patient/{patient0}"));

        // reference forms
        var ofPatient0 = observations.Where(o => o.Subject.Reference == "Patient/" + patient0).Select(o => o.Id).ToHashSet();
        Assert.Equal(ofPatient0, await Ids("Observation", $"patient={patient0}"));
        Assert.Equal(ofPatient0, await Ids("Observation", $"subject:Patient={patient0}"));

        // quantity and number prefixes
        var heavy = observations.Where(o => o.Code.Coding[0].Code == "29463-7" && ((Quantity)o.Value).Value > 80m).Select(o => o.Id).ToHashSet();
        Assert.Equal(heavy, await Ids("Observation", "code=29463-7&value-quantity=gt80"));
        Assert.Equal(heavy, await Ids("Observation", "code=29463-7&value-quantity=gt80|http://unitsofmeasure.org|kg"));

        // dates: eq by day, ge/lt ranges
        var cutoff = new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var late = observations.Where(o => ((FhirDateTime)o.Effective).ToDateTimeOffset(TimeSpan.Zero) >= cutoff).Select(o => o.Id).ToHashSet();
        Assert.Equal(late, await Ids("Observation", "date=ge2020-01-01"));
        Assert.Equal(observations.Count - late.Count, (await Ids("Observation", "date=lt2020-01-01")).Count);
        var first = observations[0];
        var day = ((FhirDateTime)first.Effective).ToDateTimeOffset(TimeSpan.Zero).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
        var sameDay = observations.Where(o => ((FhirDateTime)o.Effective).ToDateTimeOffset(TimeSpan.Zero).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture) == day).Select(o => o.Id).ToHashSet();
        Assert.Equal(sameDay, await Ids("Observation", "date=" + day));

        // strings: prefix (case and accent insensitive), exact, contains
        var patients = resources.OfType<Patient>().ToList();
        var mueller = patients.Where(p => p.Name[0].Family == "Müller").Select(p => p.Id).ToHashSet();
        Assert.Equal(mueller, await Ids("Patient", "family=muell"));
        Assert.Equal(mueller, await Ids("Patient", "family:exact=Müller"));
        Assert.Empty(await Ids("Patient", "family:exact=muller"));
        Assert.Equal(patients.Where(p => p.Name[0].Family.Contains("ll", StringComparison.Ordinal)).Select(p => p.Id).ToHashSet(), await Ids("Patient", "family:contains=LL"));

        // token on enum code, boolean, identifier
        Assert.Equal(patients.Where(p => p.Gender == AdministrativeGender.Female).Select(p => p.Id).ToHashSet(), await Ids("Patient", "gender=female"));
        Assert.Equal(patients.Where(p => p.Gender == AdministrativeGender.Female).Select(p => p.Id).ToHashSet(), await Ids("Patient", "gender=http://hl7.org/fhir/administrative-gender|female"));
        Assert.Equal(new HashSet<string> { "pat-3" }, await Ids("Patient", "identifier=urn:helios:synthetic:mrn|MRN-0000003"));

        // missing
        Assert.Equal(patients.Select(p => p.Id).ToHashSet(), await Ids("Patient", "death-date:missing=true"));
        Assert.Empty(await Ids("Patient", "birthdate:missing=true"));

        // compartment
        var compartment = new SearchQuery { Type = "Observation", CompartmentPatientId = patient0, Count = 1000 };
        Assert.Equal(ofPatient0, (await Store.SearchAsync(compartment, Ct)).Matches.Select(m => m.Id).ToHashSet());
        var claims = new SearchQuery { Type = "Claim", CompartmentPatientId = patient0, Count = 1000 };
        Assert.Equal(resources.OfType<Claim>().Count(c => c.Patient.Reference == "Patient/" + patient0), (await Store.SearchAsync(claims, Ct)).Matches.Count);

        // _total and _summary=count
        var total = await Search("Observation", "code=8867-4&_total=accurate&_count=2");
        Assert.Equal(heartRate.Count, total.Total);
        Assert.Equal(2, total.Matches.Count);
        Assert.NotNull(total.NextCursor);
    }

    [Fact]
    public async Task Sorting_AndIncludes()
    {
        var resources = new SyntheticDataGenerator(seed: 11).Generate(5).ToList();
        await new NdjsonBulkLoader(Store, Extractor).LoadResourcesAsync(resources, Ct);
        var encounters = resources.OfType<Encounter>().ToList();

        var expected = encounters.OrderByDescending(e => e.Period.StartElement.ToDateTimeOffset(TimeSpan.Zero)).Select(e => e.Id).ToList();
        var actual = new List<string>();
        string? cursor = null;
        do
        {
            var page = await Search("Encounter", "_sort=-date" + (cursor is null ? string.Empty : "&_cursor=" + cursor), 4);
            actual.AddRange(page.Matches.Select(m => m.Id));
            cursor = page.NextCursor;
        }
        while (cursor is not null);
        Assert.Equal(expected, actual);

        var byId = (await Search("Encounter", "_sort=_id", 1000)).Matches.Select(m => m.Id).ToList();
        Assert.Equal(encounters.Select(e => e.Id).Order(StringComparer.Ordinal).ToList(), byId);

        var patientId = SyntheticDataGenerator.PatientId(1);
        var withPatient = await Search("Encounter", $"subject=Patient/{patientId}&_include=Encounter:subject");
        Assert.Equal(encounters.Count(e => e.Subject.Reference == "Patient/" + patientId), withPatient.Matches.Count);
        Assert.Equal(["Patient/" + patientId], withPatient.Included.Select(i => i.Type + "/" + i.Id));

        var rev = await Search("Patient", $"_id={patientId}&_revinclude=Encounter:subject");
        Assert.Single(rev.Matches);
        Assert.Equal(encounters.Count(e => e.Subject.Reference == "Patient/" + patientId), rev.Included.Count);
    }

    [Fact]
    public async Task LoadBatch_WithTheSameIdTwice_KeepsBothVersions()
    {
        var a = NewPatient("dup", "First");
        var b = NewPatient("dup", "Second");
        await Store.LoadBatchAsync([new PreparedResource(a, Extractor.Extract(a)), new PreparedResource(b, Extractor.Extract(b))], Ct);
        var current = await Store.ReadAsync("Patient", "dup", Ct);
        Assert.Equal(2, current!.VersionId);
        Assert.Contains("Second", current.Json);
        Assert.Equal(new HashSet<string> { "dup" }, await Ids("Patient", "family=second"));
        Assert.Empty(await Ids("Patient", "family=first"));
    }

    [Fact]
    public async Task DeferredLoad_IntoAnEmptyStore_TracksItsOwnKeys_AndRestoresTheNaturalKeyIndex()
    {
        string Line(string id, string gender) => $$"""{"resourceType":"Patient","id":"{{id}}","gender":"{{gender}}"}""";
        async Task<NdjsonBulkLoader.Result> Load(params string[] lines)
        {
            var loader = new NdjsonBulkLoader(Store, Extractor) { BatchSize = 2, DeferIndexesOf = (ISchemaMigrator)Store };
            using var stream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(string.Join("\n", lines)));
            return await loader.LoadAsync(NdjsonBulkLoader.ReadLinesAsync(stream, "keys.ndjson", Ct), Ct);
        }

        // "a" three times in later batches and twice in one batch; the store is empty, so the load tracks keys itself.
        var first = await Load(Line("a", "male"), Line("b", "male"), Line("a", "female"), Line("c", "male"), Line("a", "other"), Line("a", "unknown"), Line("b", "female"));
        Assert.Equal(7, first.Loaded);
        Assert.Equal(4, (await Store.ReadAsync("Patient", "a", Ct))!.VersionId);
        Assert.Contains("\"unknown\"", (await Store.ReadAsync("Patient", "a", Ct))!.Json);
        Assert.Contains("\"female\"", (await Store.ReadVersionAsync("Patient", "a", 2, Ct))!.Json);
        Assert.Equal(2, (await Store.ReadAsync("Patient", "b", Ct))!.VersionId);
        Assert.Equal(["a"], await Ids("Patient", "gender=unknown"));
        Assert.Empty(await Ids("Patient", "gender=other"));

        // The unique natural-key index is back: a second load (into a store that is no longer empty) looks keys up.
        Assert.Equal(1, await CountNaturalKeyIndexAsync());
        var second = await Load(Line("a", "male"), Line("d", "male"));
        Assert.Equal(2, second.Loaded);
        Assert.Equal(5, (await Store.ReadAsync("Patient", "a", Ct))!.VersionId);
        Assert.Equal(1, (await Store.ReadAsync("Patient", "d", Ct))!.VersionId);
        Assert.Equal(1, await CountNaturalKeyIndexAsync());
        Assert.Equal(Helios.Storage.Sql.Schema.SecondaryIndexes(postgres: false).Count, await CountSecondaryIndexesAsync());
    }

    /// <summary>How many indexes named <c>ux_resources_version</c> exist (0 or 1).</summary>
    protected abstract Task<int> CountNaturalKeyIndexAsync();

    [Fact]
    public async Task NdjsonLoad_ReportsBadLines_LoadsTheRest_AndRebuildsDeferredIndexes()
    {
        var good1 = Helios.Storage.Fhir.FhirJson.Serialize(NewPatient("nd1", "Ndjson"));
        var good2 = Helios.Storage.Fhir.FhirJson.Serialize(NewPatient("nd2", "Ndjson"));
        var text = string.Join("\n", good1, "{\"resourceType\":\"Patient\",\"colour\":\"blue\"}", "", "{not json", good2) + "\n";
        var loader = new NdjsonBulkLoader(Store, Extractor) { BatchSize = 2, DeferIndexesOf = (ISchemaMigrator)Store };
        using var stream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text));
        var result = await loader.LoadAsync(NdjsonBulkLoader.ReadLinesAsync(stream, "test.ndjson", Ct), Ct);
        Assert.Equal(2, result.Loaded);
        Assert.Equal(2, result.Failed);
        Assert.Equal([2L, 4L], result.Errors.Select(e => e.Line));
        Assert.Contains("colour", result.Errors[0].Message);
        Assert.Equal(new HashSet<string> { "nd1", "nd2" }, await Ids("Patient", "family=ndjson"));
        Assert.Equal(Helios.Storage.Sql.Schema.SecondaryIndexes(postgres: false).Count, await CountSecondaryIndexesAsync());
    }

    [Fact]
    public async Task NdjsonLoad_NamesThePathOfEachStructuralError_AndStoresTheLineWithAssignedMeta()
    {
        string[] lines =
        [
            "\uFEFF{\"resourceType\":\"Observation\",\"id\":\"ok-1\",\"meta\":{\"versionId\":\"77\",\"profile\":[\"http://example.org/p\"]},\"status\":\"final\",\"code\":{\"text\":\"x\"},\"valueQuantity\":{\"value\":1.50,\"unit\":\"kg\"}}\r",
            "{\"resourceType\":\"Observation\",\"id\":\"bad-1\",\"status\":\"final\",\"code\":{\"text\":\"x\"},\"component\":[{\"code\":{\"text\":\"c\"},\"valueQuantity\":{\"value\":\"heavy\"}}]}",
            "{\"resourceType\":\"Observation\",\"id\":\"bad-2\",\"status\":\"final\",\"code\":{\"text\":\"x\"},\"effectiveDateTime\":\"2020-13-45\"}",
            "{\"resourceType\":\"Observation\",\"id\":\"bad-3\",\"status\":\"final\",\"code\":{\"text\":\"x\"},\"valuePotato\":1}",
            "{\"resourceType\":\"Observation\",\"id\":\"bad/4\",\"status\":\"final\",\"code\":{\"text\":\"x\"}}",
            "{\"resourceType\":\"Observation\",\"id\":\"bad-5\",\"status\":\"final\",\"code\":{\"text\":\"x\"},\"category\":{\"text\":\"not an array\"}}",
            "{\"resourceType\":\"Observation\",\"id\":\"bad-6\",\"status\":\"final\",\"code\":{\"text\":\"x\"},\"contained\":[{\"resourceType\":\"Patient\",\"id\":\"c\",\"hair\":\"red\"}]}",
            "{\"resourceType\":\"Starship\",\"id\":\"bad-7\"}",
        ];
        var loader = new NdjsonBulkLoader(Store, Extractor) { BatchSize = 3 };
        using var stream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(string.Join("\n", lines)));
        var result = await loader.LoadAsync(NdjsonBulkLoader.ReadLinesAsync(stream, "t.ndjson", Ct), Ct);

        Assert.Equal(1, result.Loaded);
        Assert.Equal([2L, 3L, 4L, 5L, 6L, 7L, 8L], result.Errors.Select(e => e.Line));
        string[] expected =
        [
            "Observation.component[0].valueQuantity.value: a decimal must be a JSON number.",
            "Observation.effectiveDateTime: '2020-13-45' is not a valid dateTime.",
            "Observation.valuePotato: 'valuePotato' is not an element of Observation.",
            "'bad/4' is not a valid FHIR id",
            "Observation.category: 'category' repeats, so its value must be an array.",
            "Observation.contained[0].hair: 'hair' is not an element of Patient.",
            "Unknown resource type 'Starship'.",
        ];
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.Contains(expected[i], result.Errors[i].Message, StringComparison.Ordinal);
        }

        var stored = await Store.ReadAsync("Observation", "ok-1", Ct);
        Assert.NotNull(stored);
        using var doc = JsonDocument.Parse(stored.Json);
        var meta = doc.RootElement.GetProperty("meta");
        Assert.Equal("1", meta.GetProperty("versionId").GetString());
        Assert.Equal(stored.LastUpdated, DateTimeOffset.Parse(meta.GetProperty("lastUpdated").GetString()!, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal("http://example.org/p", meta.GetProperty("profile")[0].GetString());
        Assert.Equal("1.50", doc.RootElement.GetProperty("valueQuantity").GetProperty("value").GetRawText());
        Assert.Equal(["ok-1"], await Ids("Observation", "value-quantity=1.5||kg"));
        Assert.Null(await Store.ReadAsync("Observation", "bad-1", Ct));
    }

    [Fact]
    public async Task CopySnapshot_WritesTheStoredJsonAsNdjson_StopsAtTheByteBound_AndResumes()
    {
        await Store.WriteAsync(Enumerable.Range(0, 6).Select(i => ResourceWrite.Create(NewPatient($"cp-{i}", "Copy"))).ToList(), Ct);
        var snapshot = await Source.CaptureSnapshotAsync(Ct);
        await Store.WriteAsync([ResourceWrite.Delete("Patient", "cp-2")], Ct);
        var expected = (await ReadSnapshotAsync(new SnapshotRange("Patient", snapshot.Seq))).Where(r => r.Id.StartsWith("cp-", StringComparison.Ordinal)).ToList();
        var first = expected[0].Seq - 1;

        // A bound smaller than one line: each call writes exactly one line and says where it stopped.
        var sink = new MemorySink();
        var after = first;
        var calls = 0;
        while (true)
        {
            var copy = await Source.CopySnapshotAsync(new SnapshotRange("Patient", snapshot.Seq, after, expected[^1].Seq), sink, 1, Ct);
            calls++;
            if (copy.Rows == 0)
            {
                Assert.True(copy.Exhausted);
                break;
            }

            Assert.Equal(1, copy.Rows);
            after = copy.LastSeq;
        }

        Assert.Equal(expected.Count + 1, calls);
        var text = System.Text.Encoding.UTF8.GetString(sink.Bytes.ToArray());
        Assert.Equal(string.Concat(expected.Select(r => r.Json + "\n")), text);

        // Unbounded, one call copies the range and reports it exhausted.
        var all = new MemorySink();
        var whole = await Source.CopySnapshotAsync(new SnapshotRange("Patient", snapshot.Seq, first, expected[^1].Seq), all, long.MaxValue, Ct);
        Assert.Equal((expected.Count, true, expected[^1].Seq, (long)all.Bytes.Count), (whole.Rows, whole.Exhausted, whole.LastSeq, whole.Bytes));
    }

    [Fact]
    public async Task CopySnapshot_KeepsNonAsciiBytes_AndTreatsQuotedPatientIdsAsData()
    {
        await Store.WriteAsync([ResourceWrite.Create(NewPatient("cq-1", "Zoë 北京 \\ \"q\" O'Brien")), ResourceWrite.Create(NewPatient("cq-2", "Other"))], Ct);
        var snapshot = await Source.CaptureSnapshotAsync(Ct);
        var expected = (await Store.ReadAsync("Patient", "cq-1", Ct))!.Json;

        // The set id and its members are data, also where PostgreSQL's COPY path inlines the set id as a literal.
        var set = "x') OR 1=1; -- back\\slash'";
        await Source.AddToPatientSetAsync(set, ["cq-1", "x') OR 1=1; --", "back\\slash'"], Ct);
        var sink = new MemorySink();
        var copy = await Source.CopySnapshotAsync(
            new SnapshotRange("Patient", snapshot.Seq) { PatientSetId = set }, sink, long.MaxValue, Ct);

        Assert.Equal(1, copy.Rows);
        Assert.Equal(expected + "\n", System.Text.Encoding.UTF8.GetString(sink.Bytes.ToArray()));
        Assert.Equal(2, (await ReadSnapshotAsync(new SnapshotRange("Patient", snapshot.Seq))).Count(r => r.Id.StartsWith("cq-", StringComparison.Ordinal)));
    }

    private sealed class MemorySink : ISnapshotSink
    {
        public List<byte> Bytes { get; } = [];

        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            Bytes.AddRange(data.ToArray());
            return ValueTask.CompletedTask;
        }
    }

    private async Task<List<StoredResource>> ReadSnapshotAsync(SnapshotRange range)
    {
        var list = new List<StoredResource>();
        await foreach (var r in Source.ReadSnapshotAsync(range, Ct))
        {
            list.Add(r);
        }

        return list;
    }

    /// <summary>How many of the store's secondary indexes exist.</summary>
    protected abstract Task<int> CountSecondaryIndexesAsync();

    [Fact]
    public async Task WritesAndSearches_EmitSpansAndMetrics()
    {
        var spans = new System.Collections.Concurrent.ConcurrentBag<string>();
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = s => s.Name == Diagnostics.StorageTelemetry.Name,
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => spans.Add(a.OperationName + ":" + a.GetTagItem("helios.resource_type")),
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);
        long written = 0;
        using var meters = new System.Diagnostics.Metrics.MeterListener();
        meters.InstrumentPublished = (i, l) =>
        {
            if (i.Meter.Name == Diagnostics.StorageTelemetry.Name && i.Name == "helios.storage.versions_written")
            {
                l.EnableMeasurementEvents(i);
            }
        };
        meters.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "resource_type" && (string?)tag.Value == "Basic")
                {
                    Interlocked.Add(ref written, value);
                }
            }
        });
        meters.Start();

        var basic = new Basic { Id = "telemetry-" + Guid.NewGuid().ToString("N")[..8], Code = new CodeableConcept("urn:test", "t") };
        await Store.WriteAsync([ResourceWrite.Create(basic)], Ct);
        await Search("Basic", "code=t");
        Assert.Contains("helios.storage.write:", spans);
        Assert.Contains("helios.storage.search:Basic", spans);
        Assert.True(Interlocked.Read(ref written) >= 1);
    }

    [Fact]
    public async Task SnapshotRead_ReturnsTheDataAsOfTheSnapshot_AndResumesByKey()
    {
        var obs = Enumerable.Range(0, 5).Select(i => new Observation
        {
            Id = $"snap-{i}",
            Status = ObservationStatus.Final,
            Code = new CodeableConcept("http://loinc.org", "8867-4"),
            Subject = new ResourceReference(i < 3 ? "Patient/snap-a" : "Patient/snap-b"),
        }).ToList();
        await Store.WriteAsync([ResourceWrite.Create(NewPatient("snap-a")), .. obs.Select(o => ResourceWrite.Create(o))], Ct);
        var snapshot = await Store.GetLastSeqAsync(Ct);

        // After the snapshot: an update, a delete and a new resource.
        obs[0].Status = ObservationStatus.Amended;
        await Store.WriteAsync([ResourceWrite.Update(obs[0]), ResourceWrite.Delete("Observation", "snap-1"), ResourceWrite.Create(new Observation
        {
            Id = "snap-late", Status = ObservationStatus.Final, Code = new CodeableConcept("http://loinc.org", "1"), Subject = new ResourceReference("Patient/snap-a"),
        })], Ct);

        var all = (await ReadSnapshotAsync(new SnapshotRange("Observation", snapshot))).Where(r => r.Id.StartsWith("snap-", StringComparison.Ordinal)).ToList();
        Assert.Equal(["snap-0", "snap-1", "snap-2", "snap-3", "snap-4"], all.Select(r => r.Id));
        Assert.Contains("\"final\"", all[0].Json);
        Assert.All(all, r => Assert.Equal(1, r.VersionId));
        Assert.Equal(all.Select(r => r.Seq).Order(), all.Select(r => r.Seq));

        // Paged by key: two at a time, resuming after the last key, gives the same rows.
        var paged = new List<string>();
        var after = all[0].Seq - 1;
        while (true)
        {
            var page = await ReadSnapshotAsync(new SnapshotRange("Observation", snapshot, AfterSeq: after, Limit: 2));
            if (page.Count == 0)
            {
                break;
            }

            paged.AddRange(page.Select(p => p.Id));
            after = page[^1].Seq;
        }

        Assert.Equal(all.Select(r => r.Id), paged.Where(id => id.StartsWith("snap-", StringComparison.Ordinal)));

        // Restricted to patients' compartments: snap-a has snap-0..2 (and the Patient itself).
        await Source.AddToPatientSetAsync("snap-set-a", ["snap-a"], Ct);
        await Source.AddToPatientSetAsync("snap-set-an", ["snap-a", "nobody"], Ct);
        var compartment = await ReadSnapshotAsync(new SnapshotRange("Observation", snapshot) { PatientSetId = "snap-set-a" });
        Assert.Equal(["snap-0", "snap-1", "snap-2"], compartment.Select(r => r.Id));
        var patient = await ReadSnapshotAsync(new SnapshotRange("Patient", snapshot) { PatientSetId = "snap-set-an" });
        Assert.Equal(["snap-a"], patient.Select(r => r.Id));

        // Now: the current view has the update and the deletion and the late resource.
        var now = (await ReadSnapshotAsync(new SnapshotRange("Observation", await Store.GetLastSeqAsync(Ct)) { PatientSetId = "snap-set-a" })).Select(r => r.Id + "/" + r.VersionId);
        Assert.Equal(["snap-2/1", "snap-0/2", "snap-late/1"], now);
    }

    [Fact]
    public async Task ExportReads_SnapshotCapture_KeyRanges_PatientSets_AndSince()
    {
        var obs = Enumerable.Range(0, 7).Select(i => new Observation
        {
            Id = $"kr-{i}",
            Status = ObservationStatus.Final,
            Code = new CodeableConcept("http://loinc.org", "8867-4"),
            Subject = new ResourceReference(i < 4 ? "Patient/kr-a" : "Patient/kr-b"),
        }).ToList();
        await Store.WriteAsync([ResourceWrite.Create(NewPatient("kr-a")), ResourceWrite.Create(NewPatient("kr-b")), .. obs.Select(o => ResourceWrite.Create(o))], Ct);
        var before = await Store.ReadAsync("Observation", "kr-6", Ct);
        var snapshot = await Source.CaptureSnapshotAsync(Ct);
        Assert.Equal(await Store.GetLastSeqAsync(Ct), snapshot.Seq);
        Assert.True(snapshot.TransactionTime >= before!.LastUpdated);

        // Every later write gets a larger key and a later instant than the snapshot.
        var late = (await Store.WriteAsync([ResourceWrite.Update(NewPatient("kr-late"))], Ct)).Single().Resource!;
        Assert.True(late.Seq > snapshot.Seq);
        Assert.True(late.LastUpdated > snapshot.TransactionTime);
        await Store.WriteAsync([ResourceWrite.Delete("Observation", "kr-0")], Ct);

        // Key ranges cover exactly the versions current at the snapshot, about N per range, in key order.
        var ranges = await Source.GetKeyRangesAsync("Observation", snapshot.Seq, 3, Ct);
        Assert.All(ranges.SkipLast(1), r => Assert.Equal(3, r.Rows));
        Assert.Equal(ranges.Select(r => r.AfterSeq).Skip(1), ranges.Select(r => r.UpToSeq).SkipLast(1));
        var inRanges = new List<string>();
        foreach (var range in ranges)
        {
            inRanges.AddRange((await ReadSnapshotAsync(new SnapshotRange("Observation", snapshot.Seq, range.AfterSeq, range.UpToSeq))).Select(r => r.Id));
        }

        var everything = (await ReadSnapshotAsync(new SnapshotRange("Observation", snapshot.Seq))).Select(r => r.Id).ToList();

        Assert.Equal(everything, inRanges);
        Assert.Contains("kr-0", inRanges);
        Assert.True(ranges.Sum(r => r.Rows) >= inRanges.Count);
        Assert.Empty(await Source.GetKeyRangesAsync("NoSuchType", snapshot.Seq, 3, Ct));
        Assert.Contains("Observation", await Source.GetTypesAsync(snapshot.Seq, Ct));

        // Patient sets: the compartments of the set's patients only; a Patient matches itself.
        var set = "set-" + Guid.NewGuid().ToString("N");
        await Source.AddToPatientSetAsync(set, ["kr-b", "kr-b", "nobody"], Ct);
        async Task<List<string>> ReadSet(string type, DateTimeOffset? since = null) =>
            (await ReadSnapshotAsync(new SnapshotRange(type, snapshot.Seq) { PatientSetId = set, Since = since })).Select(r => r.Id).ToList();

        Assert.Equal(["kr-4", "kr-5", "kr-6"], await ReadSet("Observation"));
        Assert.Equal(["kr-b"], await ReadSet("Patient"));
        Assert.Empty(await ReadSet("Observation", snapshot.TransactionTime));
        Assert.Equal(["kr-6"], await ReadSet("Observation", (await Store.ReadAsync("Observation", "kr-5", Ct))!.LastUpdated));

        // A set filled from the snapshot holds the Patients current then (not kr-late).
        var all = "all-" + Guid.NewGuid().ToString("N");
        var count = await Source.FillPatientSetFromSnapshotAsync(all, snapshot.Seq, Ct);
        Assert.True(count >= 2);
        var patients = (await ReadSnapshotAsync(new SnapshotRange("Patient", snapshot.Seq) { PatientSetId = all })).Select(r => r.Id).ToList();

        Assert.Contains("kr-a", patients);
        Assert.DoesNotContain("kr-late", patients);
        Assert.Equal(count, patients.Count);
        await Source.DeletePatientSetAsync(set, Ct);
        Assert.Empty(await ReadSet("Observation"));

        // A resource as of the snapshot: kr-0 was deleted later but existed then.
        Assert.False((await Source.ReadAtSnapshotAsync("Observation", "kr-0", snapshot.Seq, Ct))!.IsDeleted);
        Assert.True((await Source.ReadAtSnapshotAsync("Observation", "kr-0", await Store.GetLastSeqAsync(Ct), Ct))!.IsDeleted);
        Assert.Null(await Source.ReadAtSnapshotAsync("Patient", "kr-late", snapshot.Seq, Ct));
    }

    [Fact]
    public async Task LastUpdatedSearch_UsesTheVersionTimestamp()
    {
        await Store.WriteAsync([ResourceWrite.Create(NewPatient("lu1"))], Ct);
        var stored = await Store.ReadAsync("Patient", "lu1", Ct);
        var after = stored!.LastUpdated.AddSeconds(-1).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Contains("lu1", await Ids("Patient", "_lastUpdated=gt" + after));
        var later = stored.LastUpdated.AddSeconds(5).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
        Assert.DoesNotContain("lu1", await Ids("Patient", "_lastUpdated=gt" + later));
    }

    [Fact]
    public async Task DerivedUnionParameters_StoreNoRows_AndAreAnsweredByTheirSources()
    {
        var combo = Registry.Find("Observation", "combo-code")!;
        Assert.False(combo.IsStored);
        Assert.Equal(["code", "component-code"], combo.Sources.Select(s => s.Name).Order(StringComparer.Ordinal));
        Assert.True(Registry.Find("Observation", "code")!.IsStored);

        Observation Obs(string id, string code, string? componentCode, decimal? value = null) => new()
        {
            Id = id,
            Status = ObservationStatus.Final,
            Code = new CodeableConcept("http://loinc.org", code),
            Value = value is { } v ? new Quantity(v, "mm[Hg]") : null,
            Component = componentCode is null ? [] : [new Observation.ComponentComponent { Code = new CodeableConcept("http://loinc.org", componentCode), Value = new Quantity(120, "mm[Hg]") }],
        };
        await Store.WriteAsync([ResourceWrite.Create(Obs("bp", "85354-9", "8480-6")), ResourceWrite.Create(Obs("hr", "8867-4", null, 70))], Ct);

        Assert.Equal(["bp"], await Ids("Observation", "combo-code=8480-6"));
        Assert.Equal(["bp"], await Ids("Observation", "combo-code=http://loinc.org|85354-9"));
        Assert.Equal(["bp", "hr"], (await Ids("Observation", "combo-code=85354-9,8867-4")).Order(StringComparer.Ordinal));
        Assert.Empty(await Ids("Observation", "code=8480-6"));
        Assert.Equal(["hr"], await Ids("Observation", "combo-code:not=8480-6,85354-9"));
        Assert.Equal(["bp"], await Ids("Observation", "combo-value-quantity=120"));
        Assert.Equal(["hr"], await Ids("Observation", "combo-value-quantity=lt100"));
        Assert.Empty(await Ids("Observation", "combo-code:missing=true"));
        Assert.Equal(2, (await Ids("Observation", "combo-code:missing=false")).Count);
    }

    /// <summary>A fresh store migrated only to <paramref name="version"/>, a raw SQL executor on its database, and
    /// the call that completes its migration.</summary>
    protected abstract Task<(IResourceStore Store, Func<string, Task> Sql, Func<string, Task<long>> Scalar, Func<Task> Migrate)> CreateStoreAtVersionAsync(int version);

    [Fact]
    public async Task Migration3_MovesIndexRowsToParameterKeys_AndDropsRowsOfDerivedParameters()
    {
        var (legacy, sql, scalar, migrate) = await CreateStoreAtVersionAsync(2);
        const string json = "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"meta\":{\"versionId\":\"1\",\"lastUpdated\":\"2026-01-01T00:00:00Z\"},\"status\":\"final\",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8867-4\"}]},\"subject\":{\"reference\":\"Patient/p1\"},\"effectiveDateTime\":\"2020-02-03\"}";
        await sql($"INSERT INTO resources (seq, res_type, res_id, version, last_updated, deleted, next_seq, json) VALUES (1, 'Observation', 'o1', 1, 1767225600000000, 0, NULL, '{json}')");
        await sql("INSERT INTO idx_token VALUES (1, 'Observation', 'code', 'http://loinc.org', '8867-4')");
        await sql("INSERT INTO idx_token VALUES (1, 'Observation', 'combo-code', 'http://loinc.org', '8867-4')");
        await sql("INSERT INTO idx_token VALUES (1, 'Observation', 'no-such-parameter', NULL, 'x')");
        await sql("INSERT INTO idx_reference VALUES (1, 'Observation', 'subject', 'Patient', 'p1')");
        await sql("INSERT INTO idx_date VALUES (1, 'Observation', 'date', 1580688000000000, 1580774399999999)");
        await sql("INSERT INTO compartment VALUES (1, 'Observation', 'p1')");
        await sql("UPDATE store_state SET last_seq = 1, last_ts = 1767225600000000");
        // The version 2 index on the old columns, as every version 2 store has it.
        await sql("CREATE INDEX ix_idx_token ON idx_token (res_type, param, code, system, seq)");

        await migrate();

        Assert.Equal(1, await scalar("SELECT COUNT(*) FROM idx_token"));
        Assert.Equal(Registry.KeyOf("Observation", "code"), await scalar("SELECT pid FROM idx_token"));
        Assert.Equal(0, await scalar($"SELECT stored FROM search_params WHERE pid = {Registry.Find("Observation", "combo-code")!.Key}"));
        var parsed = _parser.Parse("Observation", [new("code", "8867-4"), new("combo-code", "http://loinc.org|8867-4"), new("subject", "Patient/p1"), new("date", "2020-02-03")], strict: true, defaultCount: 10);
        Assert.Equal(["o1"], (await legacy.SearchAsync(parsed.Query, Ct)).Matches.Select(m => m.Id));
        var compartment = new SearchQuery { Type = "Observation", CompartmentPatientId = "p1", Count = 10 };
        Assert.Equal(["o1"], (await legacy.SearchAsync(compartment, Ct)).Matches.Select(m => m.Id));
    }
}
