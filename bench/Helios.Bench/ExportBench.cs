using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Helios.Export.Adapters.FileStores;
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
/// the same client shows the emulator's own speed.
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
        try
        {
            foreach (var topology in topologies)
            {
                var dataDirectory = Path.Combine(work, topology);
                Directory.CreateDirectory(dataDirectory);
                // Polls every 50 ms time the export precisely; the 429 a fast poller gets otherwise is switched off.
                var environment = new Dictionary<string, string> { ["Helios__DataDirectory"] = dataDirectory, ["Helios__Export__PollThrottleFraction"] = "0" };
                TimeSpan raw;
                string rawFile = Path.Combine(work, topology + "-raw.ndjson");
                if (topology == "embedded")
                {
                    var store = new SqliteResourceStore(Path.Combine(dataDirectory, "helios.db"), extractor, TimeProvider.System);
                    await store.MigrateAsync(CancellationToken.None);
                    await new NdjsonBulkLoader(store, extractor) { DeferIndexesOf = store }.LoadFilesAsync([ndjson], CancellationToken.None);
                    SqliteConnection.ClearAllPools();
                    raw = await TimeShellAsync($"sqlite3 '{Path.Combine(dataDirectory, "helios.db")}' \"SELECT json FROM resources WHERE next_seq IS NULL AND deleted = 0 ORDER BY res_type, seq\" > '{rawFile}'", new Dictionary<string, string>());
                    environment["Helios__Topology"] = "embedded";
                }
                else
                {
                    pgConnection ??= await LoadPostgresAsync(ndjson, extractor);
                    var b = new NpgsqlConnectionStringBuilder(pgConnection);
                    raw = await TimeShellAsync(
                        $"psql -X -q -h {b.Host} -p {b.Port} -U {b.Username} -d {b.Database} -c \"\\copy (SELECT json FROM resources WHERE next_seq IS NULL AND deleted = 0 ORDER BY res_type, seq) TO '{rawFile}'\"",
                        new Dictionary<string, string> { ["PGPASSWORD"] = b.Password ?? string.Empty });
                    environment["Helios__Topology"] = "postgres-s3";
                    environment["ConnectionStrings__helios-db"] = pgConnection;
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
                var (exportTime, peakBytes, exported) = await ExportAsync(environment);
                var line = string.Create(CultureInfo.InvariantCulture,
                    $"{topology,-15} export: {exported} resources in {exportTime.TotalSeconds,6:F1} s | raw dump: {raw.TotalSeconds,6:F1} s ({rawBytes / 1048576.0:F0} MiB) | ratio {exportTime / raw:F2}x | peak RSS of the exporting process {peakBytes / 1048576.0:F0} MiB");
                if (topology == "postgres-s3")
                {
                    var upload = await PlainUploadAsync(environment, rawFile);
                    line += string.Create(CultureInfo.InvariantCulture, $" | plain S3 upload of the raw dump: {upload.TotalSeconds:F1} s");
                }

                Console.WriteLine(line);
                File.Delete(rawFile);
            }
        }
        finally
        {
            await (await PostgresServer.GetAsync()).DisposeAsync();
            await (await S3Server.GetAsync()).DisposeAsync();
            Directory.Delete(work, recursive: true);
        }
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

    /// <summary>Starts Helios.Api, runs one system export, returns (kick-off to manifest, peak RSS, resources in the manifest).</summary>
    private static async Task<(TimeSpan Elapsed, long PeakBytes, long Exported)> ExportAsync(Dictionary<string, string> environment)
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

            var kickoff = new HttpRequestMessage(HttpMethod.Get, url + "/$export");
            kickoff.Headers.TryAddWithoutValidation("Prefer", "respond-async");
            var watch = Stopwatch.StartNew();
            var accepted = await http.SendAsync(kickoff);
            if (accepted.StatusCode != HttpStatusCode.Accepted)
            {
                throw new InvalidOperationException($"kick-off answered {(int)accepted.StatusCode}: {await accepted.Content.ReadAsStringAsync()}");
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
                    return (elapsed, PeakRss(process.Id), exported);
                }

                if (poll.StatusCode != HttpStatusCode.Accepted)
                {
                    throw new InvalidOperationException($"status answered {(int)poll.StatusCode}: {await poll.Content.ReadAsStringAsync()}");
                }

                await Task.Delay(50);
            }
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
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
