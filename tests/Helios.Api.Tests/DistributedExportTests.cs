using System.Diagnostics;
using System.Globalization;
using System.Net;
using Helios.Storage;
using Helios.Storage.Indexing;
using Helios.Storage.Postgres;
using Helios.Storage.Synthetic;
using Npgsql;
using Task = System.Threading.Tasks.Task;

namespace Helios.Api.Tests;

/// <summary>
/// The postgres-s3 topology as deployed: two Api processes (no workers) and two Worker processes on one PostgreSQL
/// database and one S3 bucket. An export is kicked off on one Api, polled and downloaded from the other, and one
/// worker is killed (SIGKILL) while it holds a partition lease: the export must still complete with every resource
/// exactly once.
/// </summary>
public sealed class DistributedExportTests : IAsyncLifetime
{
    private readonly List<Process> _processes = [];
    private readonly List<string> _logs = [];
    private string _connectionString = null!;
    private S3Server _s3 = null!;
    private string _bucket = null!;

    public async Task InitializeAsync()
    {
        _connectionString = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("helios_dist");
        _s3 = await S3Server.GetAsync();
        _bucket = _s3.NewBucketName();
    }

    public Task DisposeAsync()
    {
        foreach (var process in _processes)
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(5000);
            }

            process.Dispose();
        }

        return Task.CompletedTask;
    }

    private static string Built(string project)
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
        var path = Path.Combine(TestTools.RepositoryRoot(), project, "bin", configuration, "net10.0", project + ".dll");
        Assert.True(File.Exists(path), $"{path} is not built");
        return path;
    }

    private async Task<(Process Process, string Url)> StartAsync(string project, bool workers)
    {
        var port = TestTools.FreePort();
        var url = $"http://127.0.0.1:{port}";
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Built(project));
        var environment = new Dictionary<string, string>
        {
            ["ASPNETCORE_URLS"] = url,
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
            ["Helios__Topology"] = "postgres-s3",
            ["ConnectionStrings__helios-db"] = _connectionString,
            ["Helios__Export__S3__ServiceUrl"] = _s3.Url,
            ["Helios__Export__S3__AccessKey"] = _s3.AccessKey,
            ["Helios__Export__S3__SecretKey"] = _s3.SecretKey,
            ["Helios__Export__S3__Bucket"] = _bucket,
            ["Helios__Export__RunWorkers"] = workers ? "true" : "false",
            ["Helios__Export__WorkerCount"] = "2",
            ["Helios__Export__PartitionRows"] = "40",
            ["Helios__Export__ReadBatchRows"] = "10",
            ["Helios__Export__MaxPartBytes"] = "12000",
            ["Helios__Export__DelayPerBatch"] = "00:00:00.100",
            ["Helios__Export__LeaseDuration"] = "00:00:03",
            ["Helios__Export__HeartbeatInterval"] = "00:00:00.500",
            ["Helios__Export__SupervisorInterval"] = "00:00:00.500",
            ["Helios__Export__RequeueAfter"] = "00:00:05",
            ["Helios__Export__PollThrottleFraction"] = "0",
            ["Logging__LogLevel__Default"] = "Warning",
        };
        foreach (var (key, value) in environment)
        {
            psi.Environment[key] = value;
        }

        var process = Process.Start(psi)!;
        _processes.Add(process);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (_logs) { _logs.Add($"{project}:{process.Id}: {e.Data}"); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (_logs) { _logs.Add($"{project}:{process.Id}! {e.Data}"); } } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var http = new HttpClient();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            Assert.False(process.HasExited, $"{project} exited: {string.Join("\n", _logs)}");
            try
            {
                if ((await http.GetAsync(url + "/health")).StatusCode == HttpStatusCode.OK)
                {
                    return (process, url);
                }
            }
            catch (HttpRequestException)
            {
            }

            Assert.True(DateTime.UtcNow < deadline, $"{project} did not become healthy: {string.Join("\n", _logs)}");
            await Task.Delay(200);
        }
    }

    [Fact]
    public async Task TwoApis_TwoWorkers_OneWorkerKilledMidExport_ExportIsExact()
    {
        // Schema and data first (the processes would migrate too; this way the seed needs no HTTP).
        await using var dataSource = NpgsqlDataSource.Create(_connectionString);
        var store = new PostgresResourceStore(dataSource, new IndexExtractor(SearchParameterRegistry.Instance), TimeProvider.System);
        await store.MigrateAsync(CancellationToken.None);
        await store.WriteAsync(new SyntheticDataGenerator(11).Generate(60).Select(r => ResourceWrite.Update(r)).ToList(), CancellationToken.None);
        var expected = await store.CountByTypeAsync(CancellationToken.None);

        var starts = await Task.WhenAll(
            StartAsync("Helios.Api", workers: false), StartAsync("Helios.Api", workers: false),
            StartAsync("Helios.Worker", workers: true), StartAsync("Helios.Worker", workers: true));
        var (api1, api2, worker1) = (starts[0].Url, starts[1].Url, starts[2].Process);

        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false });
        var kickoff = new HttpRequestMessage(HttpMethod.Get, api1 + "/$export");
        kickoff.Headers.TryAddWithoutValidation("Prefer", "respond-async");
        kickoff.Headers.TryAddWithoutValidation("Accept", "application/fhir+json");
        var accepted = await http.SendAsync(kickoff);
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        var statusUrl = accepted.Content.Headers.ContentLocation!.AbsoluteUri;
        var jobId = statusUrl[(statusUrl.LastIndexOf('/') + 1)..];
        Assert.StartsWith(api1, statusUrl, StringComparison.Ordinal);

        // Kill worker 1 while it holds a lease, after work has been committed.
        var owner = $"-{worker1.Id.ToString(CultureInfo.InvariantCulture)}-";
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            await using var command = dataSource.CreateCommand("""
                SELECT (SELECT COUNT(*) FROM export_partitions WHERE job_id = $1 AND status = 'running' AND lease_owner LIKE $2),
                       (SELECT COUNT(*) FROM export_files WHERE job_id = $1)
                """);
            command.Parameters.AddWithValue(jobId);
            command.Parameters.AddWithValue("%" + owner + "%");
            await using var reader = await command.ExecuteReaderAsync();
            await reader.ReadAsync();
            if (reader.GetInt64(0) > 0 && reader.GetInt64(1) > 0)
            {
                break;
            }

            Assert.True(DateTime.UtcNow < deadline, "worker 1 never held a lease while parts were committed");
            await Task.Delay(20);
        }

        worker1.Kill(entireProcessTree: true);
        await worker1.WaitForExitAsync();

        // Poll and download through the other Api.
        var client = new ExportClient(new HttpClient());
        var manifest = await client.WaitForManifestAsync(api2 + $"/$export-status/{jobId}", TimeSpan.FromSeconds(120));
        Assert.Equal(api1 + "/$export", manifest.GetProperty("request").GetString());
        foreach (var item in manifest.GetProperty("output").EnumerateArray())
        {
            Assert.StartsWith(api2 + "/$export-file/", item.GetProperty("url").GetString(), StringComparison.Ordinal);
        }

        var ids = ExportClient.IdsByType(await client.DownloadOutputAsync(manifest));
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), ids.Keys.Order(StringComparer.Ordinal));
        foreach (var (type, count) in expected)
        {
            Assert.True(count == ids[type].Count, $"{type}: expected {count}, exported {ids[type].Count}");
        }

        // A partition really was taken over from the dead worker.
        await using var attempts = dataSource.CreateCommand("SELECT MAX(attempts) FROM export_partitions WHERE job_id = $1");
        attempts.Parameters.AddWithValue(jobId);
        Assert.True(Convert.ToInt32(await attempts.ExecuteScalarAsync(), CultureInfo.InvariantCulture) >= 2);
    }
}
