using Helios.Storage.Search;
using Helios.Storage;
using Helios.Storage.Indexing;
using Helios.Storage.Sqlite;
using Hl7.Fhir.Model;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Task = System.Threading.Tasks.Task;

namespace Helios.Export.Tests.Engine;

/// <summary>
/// The export engine without HTTP or Hangfire: a real SQLite store and job store, a real local file store (wrapped
/// so tests can act at the moment a part is published), a fake clock, and a scheduler that records what would go
/// to Hangfire. Tests drive the planner, runner and supervisor directly.
/// </summary>
internal sealed class EngineHarness : IAsyncDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "helios-engine-" + Guid.NewGuid().ToString("N")[..12]);

    private static readonly HttpClient s_http = new();

    private EngineHarness(ExportOptions options, IExportFileStore? files)
    {
        Directory.CreateDirectory(_directory);
        Options = options;
        Store = new SqliteResourceStore(Path.Combine(_directory, "helios.db"), new IndexExtractor(SearchParameterRegistry.Instance), Clock);
        Source = new SqliteExportSource(Store);
        Jobs = new SqliteExportJobStore(Path.Combine(_directory, "helios.db"), Clock);
        Files = new HookedFileStore(files ?? new LocalExportFileStore(Path.Combine(_directory, "exports")));
    }

    public FakeTimeProvider Clock { get; } = new(new DateTimeOffset(2026, 3, 1, 8, 0, 0, TimeSpan.Zero));

    public ExportOptions Options { get; }

    public SqliteResourceStore Store { get; }

    public SqliteExportSource Source { get; }

    public SqliteExportJobStore Jobs { get; }

    public HookedFileStore Files { get; }

    public RecordingScheduler Scheduler { get; } = new();

    /// <summary>The harness with its parts in a bucket of its own on the test S3 server.</summary>
    public static async Task<EngineHarness> CreateWithS3Async(Action<ExportOptions>? configure = null)
    {
        var s3 = await Helios.Testing.S3Server.GetAsync();
        var files = new S3ExportFileStore(new S3Options { ServiceUrl = s3.Url, AccessKey = s3.AccessKey, SecretKey = s3.SecretKey, Bucket = s3.NewBucketName() });
        await files.EnsureBucketAsync(CancellationToken.None);
        return await CreateAsync(configure, files);
    }

    public static async Task<EngineHarness> CreateAsync(Action<ExportOptions>? configure = null, IExportFileStore? files = null)
    {
        var options = new ExportOptions
        {
            PartitionRows = 4,
            ReadBatchRows = 2,
            LeaseDuration = TimeSpan.FromSeconds(30),
            // Far beyond any clock advance of these tests: a heartbeat never races the test's own lease moves.
            HeartbeatInterval = TimeSpan.FromHours(1),
            OutputTtl = TimeSpan.FromHours(1),
            RequeueAfter = TimeSpan.FromSeconds(30),
        };
        configure?.Invoke(options);
        var harness = new EngineHarness(options, files);
        await harness.Store.MigrateAsync(CancellationToken.None);
        await harness.Jobs.MigrateAsync(CancellationToken.None);
        return harness;
    }

    public ExportKickoff Kickoff() => new(Jobs, Store, Source, Scheduler, Clock, Microsoft.Extensions.Options.Options.Create(Options));

    private static ExportRanges Ranges { get; } = new(new SearchQueryParser(SearchParameterRegistry.Instance), SearchParameterRegistry.Instance);

    public ExportPlanner Planner() =>
        new(Jobs, Source, Files, Scheduler, SearchParameterRegistry.Instance, Ranges, Microsoft.Extensions.Options.Options.Create(Options), NullLogger<ExportPlanner>.Instance);

    public ExportPartitionRunner Runner(Microsoft.Extensions.Logging.ILogger<ExportPartitionRunner>? logger = null) =>
        new(Jobs, Source, Files, Ranges, new ExportWorkerIdentity(), Clock, Microsoft.Extensions.Options.Options.Create(Options), logger ?? NullLogger<ExportPartitionRunner>.Instance);

    public ExportSupervisor Supervisor(bool resetLeasesOnStartup = false) =>
        new(Jobs, Files, Source, Scheduler, Clock, Microsoft.Extensions.Options.Options.Create(Options), new ExportSupervisorSettings(resetLeasesOnStartup), NullLogger<ExportSupervisor>.Instance);

    /// <summary>Writes <paramref name="patients"/> Patients with <paramref name="observationsEach"/> Observations each.</summary>
    public async Task<IReadOnlyList<string>> SeedAsync(int patients, int observationsEach, string prefix = "p")
    {
        var writes = new List<ResourceWrite>();
        var keys = new List<string>();
        for (var p = 0; p < patients; p++)
        {
            var patientId = $"{prefix}{p}";
            writes.Add(ResourceWrite.Create(new Patient { Id = patientId, Gender = AdministrativeGender.Unknown }));
            keys.Add("Patient/" + patientId);
            for (var o = 0; o < observationsEach; o++)
            {
                var id = $"{prefix}{p}-o{o}";
                writes.Add(ResourceWrite.Create(new Observation
                {
                    Id = id,
                    Status = ObservationStatus.Final,
                    Code = new CodeableConcept("http://loinc.org", "8867-4"),
                    Subject = new ResourceReference("Patient/" + patientId),
                }));
                keys.Add("Observation/" + id);
            }
        }

        await Store.WriteAsync(writes, CancellationToken.None);
        return keys;
    }

    /// <summary>Accepts a system export and plans it.</summary>
    public async Task<ExportJob> StartAsync(ExportRequest? request = null)
    {
        var job = await Kickoff().StartAsync(request ?? new ExportRequest { Level = ExportLevel.System }, "t", "client", "http://h/$export", "http://h", CancellationToken.None);
        await Planner().PlanAsync(job.Id, CancellationToken.None);
        return (await Jobs.GetJobAsync(job.Id, CancellationToken.None))!;
    }

    /// <summary>Every committed output line of the job, as "Type/id", in file order.</summary>
    public async Task<List<string>> ExportedKeysAsync(string jobId)
    {
        var keys = new List<string>();
        foreach (var file in (await Jobs.GetFilesAsync(jobId, CancellationToken.None)).Where(f => f.Kind == ExportFileKinds.Output))
        {
            var lines = (await ReadFileAsync(jobId, file.FileName)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(file.ResourceCount, lines.Length);
            keys.AddRange(lines.Select(line =>
            {
                using var json = System.Text.Json.JsonDocument.Parse(line);
                return json.RootElement.GetProperty("resourceType").GetString() + "/" + json.RootElement.GetProperty("id").GetString();
            }));
        }

        return keys;
    }

    /// <summary>A stored file's text: from disk, or downloaded from its presigned URL.</summary>
    public async Task<string> ReadFileAsync(string jobId, string fileName)
    {
        if (Files.Inner.GetLocalPath(jobId, fileName) is { } path)
        {
            return await File.ReadAllTextAsync(path);
        }

        var url = await Files.Inner.GetPresignedUrlAsync(jobId, fileName, TimeSpan.FromMinutes(5), CancellationToken.None);
        return await s_http.GetStringAsync(url);
    }

    public async ValueTask DisposeAsync()
    {
        (Files.Inner as IDisposable)?.Dispose();
        Store.Dispose();
        SqliteConnection.ClearAllPools();
        await Task.Yield();
        Directory.Delete(_directory, recursive: true);
    }
}
