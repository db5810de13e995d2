using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Helios.Export.Adapters.FileStores;
using Helios.Storage.Fhir;
using Helios.Storage.Indexing;
using Helios.Storage.Loading;
using Helios.Storage.Postgres;
using Helios.Storage.Sqlite;
using Helios.Testing;
using Microsoft.Data.Sqlite;
using Npgsql;

/// <summary>
/// System-level export wall time (kick-off to complete manifest) of a real Helios.Api process, next to the raw dump of
/// the same stored JSON on the same machine in the same run (<c>sqlite3</c>; <c>psql \copy (SELECT ...) TO</c>), with
/// the peak resident memory of the exporting process. For S3, a plain multipart upload of the raw dump's bytes with
/// the same client shows the emulator's own speed. Then the filtered exports of the same run, each against the full
/// export's rate: a Group of 2,000 patients, a <c>_typeFilter</c> export (laboratory Observations, active Conditions,
/// active MedicationRequests), and a <c>_since</c> export whose window holds 1% of the resources (updated after the
/// load), whose time is compared with the full export's.
/// </summary>
internal static class ExportBench
{
    public static async Task RunAsync(string[] args, Func<string, int, string, long> writeInput)
    {
        var resources = 200_000;
        var source = "synthea";
        var topologies = new[] { "embedded", "postgres-s3", "postgres-local" };
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--resources": resources = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--source": source = args[++i]; break;
                case "--topologies": topologies = args[++i].Split(','); break;
            }
        }

        var work = Path.Combine(Path.GetTempPath(), "helios-xbench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(work);
        var ndjson = Path.Combine(work, "data.ndjson");
        var lines = writeInput(ndjson, resources, source);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"input: {lines} resources, {new FileInfo(ndjson).Length / 1048576.0:F1} MiB ({source}), {Environment.ProcessorCount} cores"));
        var extractor = new IndexExtractor(SearchParameterRegistry.Instance);
        string? pgConnection = null;
        var pgSince = DateTimeOffset.MinValue;
        try
        {
            foreach (var topology in topologies)
            {
                DateTimeOffset since;
                var dataDirectory = Path.Combine(work, topology);
                Directory.CreateDirectory(dataDirectory);
                // Polls every 50 ms time the export precisely: the 429 a fast poller gets otherwise is switched off,
                // and so is the shared status read (it would add up to its 250 ms).
                var environment = new Dictionary<string, string>
                {
                    ["Helios__DataDirectory"] = dataDirectory,
                    ["Helios__Export__PollThrottleFraction"] = "0",
                    ["Helios__Export__StatusCacheTtl"] = "00:00:00",
                };
                TimeSpan raw;
                string rawFile = Path.Combine(work, topology + "-raw.ndjson");
                if (topology == "embedded")
                {
                    var store = new SqliteResourceStore(Path.Combine(dataDirectory, "helios.db"), extractor, TimeProvider.System);
                    await store.MigrateAsync(CancellationToken.None);
                    await new NdjsonBulkLoader(store, extractor) { DeferIndexesOf = store }.LoadFilesAsync([ndjson], CancellationToken.None);
                    since = await PrepareScenariosAsync(store, ndjson);
                    SqliteConnection.ClearAllPools();
                    raw = await TimeShellAsync($"sqlite3 '{Path.Combine(dataDirectory, "helios.db")}' \"SELECT json FROM resources WHERE next_seq IS NULL AND deleted = 0 ORDER BY res_type, seq\" > '{rawFile}'", new Dictionary<string, string>());
                    environment["Helios__Topology"] = "embedded";
                }
                else
                {
                    if (pgConnection is null)
                    {
                        pgConnection = await LoadPostgresAsync(ndjson, extractor);
                        await using var dataSource = NpgsqlDataSource.Create(pgConnection);
                        pgSince = await PrepareScenariosAsync(new PostgresResourceStore(dataSource, extractor, TimeProvider.System), ndjson);
                    }

                    since = pgSince;
                    var b = new NpgsqlConnectionStringBuilder(pgConnection);
                    raw = await TimeShellAsync(
                        $"psql -X -q -h {b.Host} -p {b.Port} -U {b.Username} -d {b.Database} -c \"\\copy (SELECT json FROM resources WHERE next_seq IS NULL AND deleted = 0 ORDER BY res_type, seq) TO '{rawFile}'\"",
                        new Dictionary<string, string> { ["PGPASSWORD"] = b.Password ?? string.Empty });
                    environment["Helios__Topology"] = "postgres-s3";
                    // HELIOS_BENCH_EXPLAIN=1: the server logs the plans of the Api's statements slower than 200 ms.
                    environment["ConnectionStrings__helios-db"] = Environment.GetEnvironmentVariable("HELIOS_BENCH_EXPLAIN") == "1"
                        ? pgConnection + ";Options=-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=200 -c auto_explain.log_analyze=on"
                        : pgConnection;
                    if (topology == "postgres-local")
                    {
                        environment["Helios__Export__FileStore"] = "local";
                    }
                    else
                    {
                        var s3 = await S3Server.GetAsync();
                        environment["Helios__Export__S3__ServiceUrl"] = s3.Url;
                        environment["Helios__Export__S3__AccessKey"] = s3.AccessKey;
                        environment["Helios__Export__S3__SecretKey"] = s3.SecretKey;
                        environment["Helios__Export__S3__Bucket"] = s3.NewBucketName();
                    }
                }

                var rawBytes = new FileInfo(rawFile).Length;
                var sinceText = Uri.EscapeDataString(since.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture));
                string[] scenarios =
                [
                    "/$export",
                    $"/Group/{BenchGroupId}/$export",
                    "/$export?_type=Observation,Condition,MedicationRequest&_typeFilter=" + Uri.EscapeDataString("Observation?category=laboratory") +
                        "&_typeFilter=" + Uri.EscapeDataString("Condition?clinical-status=active") + "&_typeFilter=" + Uri.EscapeDataString("MedicationRequest?status=active"),
                    "/$export?_since=" + sinceText,
                ];
                var (runs, peakBytes) = await ExportAsync(environment, scenarios);
                var (exportTime, exported) = runs[0];
                var line = string.Create(CultureInfo.InvariantCulture,
                    $"{topology,-15} export: {exported} resources in {exportTime.TotalSeconds,6:F1} s | raw dump: {raw.TotalSeconds,6:F1} s ({rawBytes / 1048576.0:F0} MiB) | ratio {exportTime / raw:F2}x | peak RSS of the exporting process {peakBytes / 1048576.0:F0} MiB");
                if (topology == "postgres-s3")
                {
                    var upload = await PlainUploadAsync(environment, rawFile);
                    line += string.Create(CultureInfo.InvariantCulture, $" | plain S3 upload of the raw dump: {upload.TotalSeconds:F1} s");
                }

                Console.WriteLine(line);
                var fullRate = exported / exportTime.TotalSeconds;
                foreach (var (name, (time, count)) in new[] { "Group of 2,000 patients", "_typeFilter (3 filters)", "_since (1% window)" }.Zip(runs.Skip(1)))
                {
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{topology,-15}   {name,-24} {count,9} resources in {time.TotalSeconds,6:F1} s = {count / time.TotalSeconds,9:F0}/s ({count / time.TotalSeconds / fullRate:F2}x the full export's rate; {time / exportTime * 100:F1}% of its time)"));
                }

                File.Delete(rawFile);
            }
        }
        finally
        {
            if (Environment.GetEnvironmentVariable("HELIOS_BENCH_EXPLAIN") == "1")
            {
                foreach (var log in Directory.GetDirectories(Path.GetTempPath(), "helios-pg-*").Select(d => Path.Combine(d, "log")).Where(File.Exists))
                {
                    File.Copy(log, Path.Combine(Path.GetTempPath(), "helios-bench-explain.log"), overwrite: true);
                    Console.WriteLine("slow statement plans: " + Path.Combine(Path.GetTempPath(), "helios-bench-explain.log"));
                }
            }

            await (await PostgresServer.GetAsync()).DisposeAsync();
            await (await S3Server.GetAsync()).DisposeAsync();
            Directory.Delete(work, recursive: true);
        }
    }

    private const string BenchGroupId = "bench-group";

    /// <summary>After the load: a Group of the first 2,000 Patients, then 1% of the resources updated (a tag added),
    /// after the returned instant: the <c>_since</c> window.</summary>
    private static async Task<DateTimeOffset> PrepareScenariosAsync(Helios.Storage.IResourceStore store, string ndjson)
    {
        var patients = File.ReadLines(ndjson).Where(l => l.Contains("\"resourceType\":\"Patient\"", StringComparison.Ordinal))
            .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("id").GetString()!).Take(2000).ToList();
        var group = new Hl7.Fhir.Model.Group
        {
            Id = BenchGroupId, Type = Hl7.Fhir.Model.Group.GroupType.Person, Actual = true,
            Member = [.. patients.Select(id => new Hl7.Fhir.Model.Group.MemberComponent { Entity = new Hl7.Fhir.Model.ResourceReference("Patient/" + id) })],
        };
        await store.WriteAsync([Helios.Storage.ResourceWrite.Update(group)], CancellationToken.None);
        await Task.Delay(10);
        var since = DateTimeOffset.UtcNow;
        await Task.Delay(10);
        var random = new Random(11);
        var touched = File.ReadLines(ndjson).Where(_ => random.Next(100) == 0).Select(l =>
        {
            var resource = FhirJson.ParseResource(System.Text.Encoding.UTF8.GetBytes(l));
            resource.Meta ??= new Hl7.Fhir.Model.Meta();
            resource.Meta.Tag.Add(new Hl7.Fhir.Model.Coding("http://example.org/bench", "touched"));
            return Helios.Storage.ResourceWrite.Update(resource);
        });
        var count = 0;
        foreach (var chunk in touched.Chunk(1000))
        {
            await store.WriteAsync(chunk, CancellationToken.None);
            count += chunk.Length;
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"scenarios: Group of {patients.Count} patients; {count} resources updated after _since"));
        return since;
    }

    private static async Task<string> LoadPostgresAsync(string ndjson, IndexExtractor extractor)
    {
        var connectionString = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("xbench");
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        var store = new PostgresResourceStore(dataSource, extractor, TimeProvider.System);
        await store.MigrateAsync(CancellationToken.None);
        await new NdjsonBulkLoader(store, extractor) { DeferIndexesOf = store }.LoadFilesAsync([ndjson], CancellationToken.None);
        return connectionString;
    }

    private static async Task<TimeSpan> TimeShellAsync(string command, IReadOnlyDictionary<string, string> environment)
    {
        var psi = new ProcessStartInfo("bash") { UseShellExecute = false, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        foreach (var (key, value) in environment)
        {
            psi.Environment[key] = value;
        }

        var watch = Stopwatch.StartNew();
        using var process = Process.Start(psi)!;
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{command} failed: {stderr}");
        }

        return watch.Elapsed;
    }

    /// <summary>Starts Helios.Api, runs the exports one after another, returns for each (kick-off to manifest,
    /// resources in the manifest), and the peak RSS.</summary>
    private static async Task<(List<(TimeSpan Elapsed, long Exported)> Runs, long PeakBytes)> ExportAsync(Dictionary<string, string> environment, IReadOnlyList<string> paths)
    {
        var api = Path.Combine(Path.GetDirectoryName(typeof(ExportBench).Assembly.Location)!.Replace(
            Path.Combine("bench", "Helios.Bench"), "Helios.Api", StringComparison.Ordinal), "Helios.Api.dll");
        var url = $"http://127.0.0.1:{TestTools.FreePort()}";
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(api);
        psi.Environment["ASPNETCORE_URLS"] = url;
        psi.Environment["Logging__LogLevel__Default"] = "Warning";
        foreach (var (key, value) in environment)
        {
            psi.Environment[key] = value;
        }

        using var process = Process.Start(psi)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { Console.Error.WriteLine("api: " + e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(5) };
            while (true)
            {
                try
                {
                    if ((await http.GetAsync(url + "/health")).IsSuccessStatusCode)
                    {
                        break;
                    }
                }
                catch (HttpRequestException)
                {
                    await Task.Delay(100);
                }
            }

            var runs = new List<(TimeSpan, long)>();
            foreach (var path in paths)
            {
                runs.Add(await ExportOnceAsync(http, url + path));
            }

            return (runs, PeakRss(process.Id));
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    private static async Task<(TimeSpan Elapsed, long Exported)> ExportOnceAsync(HttpClient http, string url)
    {
        var kickoff = new HttpRequestMessage(HttpMethod.Get, url);
        kickoff.Headers.TryAddWithoutValidation("Prefer", "respond-async");
        var watch = Stopwatch.StartNew();
        var accepted = await http.SendAsync(kickoff);
        if (accepted.StatusCode != HttpStatusCode.Accepted)
        {
            throw new InvalidOperationException($"kick-off {url} answered {(int)accepted.StatusCode}: {await accepted.Content.ReadAsStringAsync()}");
        }

        var status = accepted.Content.Headers.ContentLocation!;
        while (true)
        {
            var poll = await http.GetAsync(status);
            if (poll.StatusCode == HttpStatusCode.OK)
            {
                var elapsed = watch.Elapsed;
                using var manifest = JsonDocument.Parse(await poll.Content.ReadAsStringAsync());
                var exported = manifest.RootElement.GetProperty("output").EnumerateArray().Sum(o => o.GetProperty("count").GetInt64());
                // The next export starts on a clean slate (files and job rows go with the DELETE).
                await http.DeleteAsync(status);
                return (elapsed, exported);
            }

            if (poll.StatusCode != HttpStatusCode.Accepted)
            {
                throw new InvalidOperationException($"status of {url} answered {(int)poll.StatusCode}: {await poll.Content.ReadAsStringAsync()}");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>VmHWM: the process's peak resident set.</summary>
    private static long PeakRss(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>The raw dump's bytes through the same S3 client and upload code (multipart, 8 MiB parts).</summary>
    private static async Task<TimeSpan> PlainUploadAsync(Dictionary<string, string> environment, string file)
    {
        var options = new S3Options
        {
            ServiceUrl = environment["Helios__Export__S3__ServiceUrl"],
            AccessKey = environment["Helios__Export__S3__AccessKey"],
            SecretKey = environment["Helios__Export__S3__SecretKey"],
            Bucket = environment["Helios__Export__S3__Bucket"],
        };
        using var store = new S3ExportFileStore(options);
        await store.EnsureBucketAsync(CancellationToken.None);
        var watch = Stopwatch.StartNew();
        await using (var writer = await store.CreateAsync("plain-upload", "raw.ndjson", CancellationToken.None))
        {
            await using var input = File.OpenRead(file);
            var buffer = new byte[1 << 20];
            int read;
            while ((read = await input.ReadAsync(buffer)) > 0)
            {
                await writer.WriteAsync(buffer.AsMemory(0, read), CancellationToken.None);
            }

            await writer.PublishAsync(CancellationToken.None);
        }

        return watch.Elapsed;
    }
}
