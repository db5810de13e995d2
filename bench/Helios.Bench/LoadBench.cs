using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Helios.Storage.Indexing;
using Helios.Storage.Loading;
using Helios.Storage.Postgres;
using Helios.Testing;
using Npgsql;

/// <summary>
/// Load benchmarks of issue 13, each against real processes (Helios.Api, Helios.Worker) on the postgres-s3 topology
/// (PostgreSQL and the S3 server started here):
/// <list type="bullet">
/// <item><c>--concurrent</c>: C clients each run a system export at once with W workers, while P pollers hit the
/// status route; every export is checked (each file's line count, every id once per type, the totals against the
/// database); poll latency p50/p99/max and every status code are reported.</item>
/// <item><c>--writes</c>: R REST writes per second (updates, creates, deletes) during a system export of the data;
/// the export is compared id by id and version by version with the database as of its <c>transactionTime</c>.</item>
/// <item><c>--churn</c>: M minutes of kick-offs, cancels, downloads and expiries; afterwards no object, unfinished
/// upload or job row is left, and the Api's resident memory is compared with where it started.</item>
/// </list>
/// </summary>
internal static class LoadBench
{
    private static readonly HttpClient s_http = new() { Timeout = TimeSpan.FromMinutes(10) };

    public static async Task RunAsync(string[] args, Func<string, int, string, long> writeInput)
    {
        var mode = args.Contains("--concurrent") ? "concurrent" : args.Contains("--writes") ? "writes" : "churn";
        var resources = mode switch { "concurrent" => 50_000, "writes" => 1_000_000, _ => 20_000 };
        int clients = 20, pollers = 100, workers = 2, pollIntervalMs = 100, rate = 100, maxInFlight = 256;
        var minutes = 10.0;
        int workerNice = 0, s3Nice = 0;
        var source = "synthea";
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--resources": resources = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--clients": clients = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--pollers": pollers = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--workers": workers = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--poll-interval-ms": pollIntervalMs = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--rate": rate = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--max-in-flight": maxInFlight = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--minutes": minutes = double.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--source": source = args[++i]; break;
                case "--worker-nice": workerNice = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--s3-nice": s3Nice = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
            }
        }

        var work = Path.Combine(Path.GetTempPath(), "helios-lbench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(work);
        var stack = new Stack { WorkerNice = workerNice };
        try
        {
            var ndjson = Path.Combine(work, "data.ndjson");
            var lines = writeInput(ndjson, resources, source);
            var pg = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("lbench");
            var extractor = new IndexExtractor(SearchParameterRegistry.Instance);
            await using (var dataSource = NpgsqlDataSource.Create(pg))
            {
                var store = new PostgresResourceStore(dataSource, extractor, TimeProvider.System);
                await store.MigrateAsync(CancellationToken.None);
                await new NdjsonBulkLoader(store, extractor) { DeferIndexesOf = store }.LoadFilesAsync([ndjson], CancellationToken.None);
            }

            File.Delete(ndjson);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{mode}: {lines} resources ({source}) loaded into PostgreSQL; {Environment.ProcessorCount} cores"));
            var s3 = await S3Server.GetAsync();
            if (s3Nice != 0 && s3.ProcessId is { } s3Pid)
            {
                // The S3 server stands in for a service on other machines: lower all its threads.
                foreach (var task in Directory.EnumerateDirectories($"/proc/{s3Pid}/task"))
                {
                    using var renice = Process.Start("renice", ["-n", s3Nice.ToString(CultureInfo.InvariantCulture), "-p", Path.GetFileName(task)]);
                    await renice.WaitForExitAsync();
                }
            }

            var environment = new Dictionary<string, string>
            {
                ["Helios__Topology"] = "postgres-s3",
                ["ConnectionStrings__helios-db"] = pg,
                ["Helios__Export__S3__ServiceUrl"] = s3.Url,
                ["Helios__Export__S3__AccessKey"] = s3.AccessKey,
                ["Helios__Export__S3__SecretKey"] = s3.SecretKey,
                ["Helios__Export__S3__Bucket"] = s3.NewBucketName(),
                ["Helios__Export__MaxActivePerClient"] = "1000",
                ["Helios__Export__MaxActivePerTenant"] = "1000",
                ["Helios__Export__PollThrottleFraction"] = "0",
                ["Helios__Export__RunWorkers"] = "false",
            };
            if (mode == "churn")
            {
                environment["Helios__Export__OutputTtl"] = "00:00:20";
            }

            var api = await stack.StartAsync("Helios.Api", environment);
            for (var w = 0; w < (mode == "concurrent" ? workers : 2); w++)
            {
                await stack.StartAsync("Helios.Worker", environment);
            }

            switch (mode)
            {
                case "concurrent":
                    await ConcurrentAsync(api, pg, clients, pollers, pollIntervalMs);
                    break;
                case "writes":
                    await WritesAsync(api, pg, rate, maxInFlight);
                    break;
                default:
                    await ChurnAsync(api, stack.ApiPid, pg, environment, TimeSpan.FromMinutes(minutes));
                    break;
            }
        }
        finally
        {
            await stack.DisposeAsync();
            await (await PostgresServer.GetAsync()).DisposeAsync();
            await (await S3Server.GetAsync()).DisposeAsync();
            Directory.Delete(work, recursive: true);
        }
    }

    private static async Task ConcurrentAsync(string api, string pg, int clients, int pollers, int pollIntervalMs)
    {
        var expected = await CountsAsync(pg);
        var codes = new ConcurrentDictionary<int, int>();
        var latencies = new ConcurrentBag<double>();
        var statusUrls = new ConcurrentBag<Uri>();
        using var stop = new CancellationTokenSource();
        var watch = Stopwatch.StartNew();
        var exports = Enumerable.Range(0, clients).Select(async c =>
        {
            var status = await KickoffAsync(api + "/$export");
            statusUrls.Add(status);
            var manifest = await WaitAsync(status, TimeSpan.FromMinutes(30));
            return (Elapsed: watch.Elapsed, Manifest: manifest);
        }).ToList();
        var polling = Enumerable.Range(0, pollers).Select(async p =>
        {
            var random = new Random(p);
            await Task.Delay(random.Next(pollIntervalMs), CancellationToken.None);
            while (!stop.IsCancellationRequested)
            {
                var urls = statusUrls.ToArray();
                if (urls.Length > 0)
                {
                    var started = Stopwatch.GetTimestamp();
                    using var response = await s_http.GetAsync(urls[random.Next(urls.Length)], HttpCompletionOption.ResponseHeadersRead);
                    await response.Content.LoadIntoBufferAsync();
                    latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    codes.AddOrUpdate((int)response.StatusCode, 1, (_, n) => n + 1);
                }

                await Task.Delay(pollIntervalMs, CancellationToken.None);
            }
        }).ToList();
        var done = await Task.WhenAll(exports);
        var exportSeconds = watch.Elapsed.TotalSeconds;
        var busy = latencies.ToArray();
        var busyCodes = codes.ToDictionary(c => c.Key, c => c.Value);

        // The same pollers for 10 s more, with every export finished: the route's own cost on a quiet machine.
        latencies.Clear();
        await Task.Delay(TimeSpan.FromSeconds(10));
        await stop.CancelAsync();
        await Task.WhenAll(polling);
        var quiet = latencies.Order().ToArray();

        // One client, one poll after another (no queueing at all): the route's latency alone.
        var sequential = new List<double>();
        var finished = statusUrls.ToArray();
        for (var i = 0; i < 1000; i++)
        {
            var started = Stopwatch.GetTimestamp();
            using var response = await s_http.GetAsync(finished[i % finished.Length]);
            await response.Content.LoadIntoBufferAsync();
            sequential.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }

        sequential.Sort();

        // Every export complete and correct: each file's lines, each id once per type, the totals of the database.
        var checkedResources = 0L;
        foreach (var (_, manifest) in done)
        {
            var ids = await DownloadAsync(manifest, keepVersions: false);
            foreach (var (type, count) in expected)
            {
                var got = ids.TryGetValue(type, out var set) ? set.Count : 0;
                if (got != count)
                {
                    throw new InvalidOperationException($"an export holds {got} distinct {type} ids, the database {count}");
                }

                checkedResources += got;
            }
        }

        var sorted = busy.Order().ToArray();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"concurrent: {clients} system exports of {expected.Values.Sum()} resources each, all complete and correct ({checkedResources} resources checked id by id) in {exportSeconds:F1} s (first {done.Min(d => d.Elapsed).TotalSeconds:F1} s, last {done.Max(d => d.Elapsed).TotalSeconds:F1} s)"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"concurrent: {pollers} pollers while the exports ran, {sorted.Length} status polls ({sorted.Length / exportSeconds:F0}/s): p50 {Percentile(sorted, 0.50):F1} ms, p99 {Percentile(sorted, 0.99):F1} ms, max {sorted[^1]:F1} ms; statuses {string.Join(", ", busyCodes.OrderBy(c => c.Key).Select(c => $"{c.Key}: {c.Value}"))}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"concurrent: the same pollers for 10 s after the last export finished, {quiet.Length} polls of finished exports: p50 {Percentile(quiet, 0.50):F1} ms, p99 {Percentile(quiet, 0.99):F1} ms, max {(quiet.Length > 0 ? quiet[^1] : 0):F1} ms"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"concurrent: then one client polling finished exports one after another, 1000 polls: p50 {Percentile([.. sequential], 0.50):F1} ms, p99 {Percentile([.. sequential], 0.99):F1} ms, max {sequential[^1]:F1} ms"));
        if (codes.Keys.Any(c => c >= 500))
        {
            throw new InvalidOperationException("a status poll answered 5xx");
        }
    }

    private static async Task WritesAsync(string api, string pg, int rate, int maxInFlight)
    {
        // Targets: existing resources to update or delete (ids read up front), and new ones to create.
        var targets = new List<(string Type, string Id)>();
        await using (var connection = new NpgsqlConnection(pg))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT res_type, res_id FROM resources WHERE next_seq IS NULL AND deleted = 0 AND res_type IN ('Patient', 'Observation', 'Condition', 'Encounter') ORDER BY random() LIMIT 200000", connection);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                targets.Add((reader.GetString(0), reader.GetString(1)));
            }
        }

        using var stop = new CancellationTokenSource();
        var codes = new ConcurrentDictionary<int, int>();
        var written = 0;
        var skipped = 0;
        var latencies = new ConcurrentBag<double>();
        var writer = Task.Run(async () =>
        {
            var random = new Random(5);
            var interval = TimeSpan.FromSeconds(1.0 / rate);
            var next = Stopwatch.GetTimestamp();
            var inFlight = new List<Task>();
            while (!stop.IsCancellationRequested)
            {
                var (type, id) = targets[random.Next(targets.Count)];
                var kind = random.Next(10);
                inFlight.RemoveAll(t => t.IsCompleted);
                if (inFlight.Count >= maxInFlight)
                {
                    // The server is behind: this write is skipped (the achieved rate is reported).
                    Interlocked.Increment(ref skipped);
                }
                else
                inFlight.Add(Task.Run(async () =>
                {
                    var started = Stopwatch.GetTimestamp();
                    HttpResponseMessage response;
                    if (kind == 0)
                    {
                        response = await s_http.DeleteAsync($"{api}/{type}/{id}");
                    }
                    else if (kind == 1)
                    {
                        var newId = "lb-" + Guid.NewGuid().ToString("N")[..16];
                        response = await s_http.PutAsync($"{api}/Patient/{newId}", new StringContent($$"""{"resourceType":"Patient","id":"{{newId}}","gender":"unknown"}""", Encoding.UTF8, "application/fhir+json"));
                    }
                    else
                    {
                        var current = await s_http.GetAsync($"{api}/{type}/{id}");
                        if (current.StatusCode != HttpStatusCode.OK)
                        {
                            codes.AddOrUpdate((int)current.StatusCode, 1, (_, n) => n + 1);
                            return;
                        }

                        var node = System.Text.Json.Nodes.JsonNode.Parse(await current.Content.ReadAsStringAsync())!;
                        node["language"] = "en-" + random.Next(1000).ToString(CultureInfo.InvariantCulture);
                        response = await s_http.PutAsync($"{api}/{type}/{id}", new StringContent(node.ToJsonString(), Encoding.UTF8, "application/fhir+json"));
                    }

                    codes.AddOrUpdate((int)response.StatusCode, 1, (_, n) => n + 1);
                    latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    Interlocked.Increment(ref written);
                    response.Dispose();
                }));
                next += (long)(interval.TotalSeconds * Stopwatch.Frequency);
                var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), next);
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, CancellationToken.None);
                }
            }

            await Task.WhenAll(inFlight);
        });

        // Writes run for 5 s before the kick-off (their latency with no export running) and until the export is complete.
        await Task.Delay(TimeSpan.FromSeconds(5));
        var idle = latencies.Order().ToArray();
        latencies.Clear();
        var before = written;
        var watch = Stopwatch.StartNew();
        var status = await KickoffAsync(api + "/$export");
        var manifest = await WaitAsync(status, TimeSpan.FromMinutes(30));
        var exportTime = watch.Elapsed;
        var during = written - before;
        await stop.CancelAsync();
        await writer;

        var transactionTime = DateTimeOffset.Parse(manifest.GetProperty("transactionTime").GetString()!, CultureInfo.InvariantCulture);
        var exported = await DownloadAsync(manifest, keepVersions: true);
        // As of transactionTime: per (type, id), the latest version written at or before it, unless that is a delete.
        var expected = new Dictionary<string, Dictionary<string, int>>(StringComparer.Ordinal);
        long after = 0;
        await using (var connection = new NpgsqlConnection(pg))
        {
            await connection.OpenAsync();
            var micros = (transactionTime - DateTimeOffset.UnixEpoch).Ticks / 10;
            await using (var command = new NpgsqlCommand("""
                SELECT DISTINCT ON (res_type, res_id) res_type, res_id, version, deleted FROM resources
                WHERE last_updated <= @t ORDER BY res_type, res_id, version DESC
                """, connection))
            {
                command.Parameters.AddWithValue("t", micros);
                command.CommandTimeout = 600;
                await using var reader = await command.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    if (reader.GetInt32(3) == 0)
                    {
                        var byId = expected.TryGetValue(reader.GetString(0), out var d) ? d : expected[reader.GetString(0)] = new(StringComparer.Ordinal);
                        byId[reader.GetString(1)] = reader.GetInt32(2);
                    }
                }
            }

            await using (var count = new NpgsqlCommand("SELECT COUNT(*) FROM resources WHERE last_updated > @t", connection))
            {
                count.Parameters.AddWithValue("t", micros);
                after = (long)(await count.ExecuteScalarAsync())!;
            }
        }

        long compared = 0;
        foreach (var type in expected.Keys.Union(exported.Keys))
        {
            var want = expected.GetValueOrDefault(type) ?? [];
            var got = exported.GetValueOrDefault(type) ?? [];
            var missing = want.Keys.Except(got.Keys).Take(3).ToList();
            var extra = got.Keys.Except(want.Keys).Take(3).ToList();
            var wrongVersion = want.Where(w => got.TryGetValue(w.Key, out var v) && v.ToString(CultureInfo.InvariantCulture) != w.Value.ToString(CultureInfo.InvariantCulture)).Take(3).ToList();
            if (missing.Count + extra.Count + wrongVersion.Count > 0 || want.Count != got.Count)
            {
                throw new InvalidOperationException($"{type}: the export differs from the data as of {transactionTime:O}: missing {string.Join(",", missing)}; extra {string.Join(",", extra)}; other version {string.Join(",", wrongVersion.Select(w => $"{w.Key} v{w.Value} vs v{got[w.Key]}"))}");
            }

            compared += want.Count;
        }

        var sortedLatencies = latencies.Order().ToArray();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"writes: before the kick-off, {idle.Length} writes in 5 s: p50 {Percentile(idle, 0.5):F0} ms, p99 {Percentile(idle, 0.99):F0} ms"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"writes: {during} REST writes ({during / exportTime.TotalSeconds:F0}/s, {skipped} skipped with {maxInFlight} in flight) during a {exportTime.TotalSeconds:F1} s export; write p50 {Percentile(sortedLatencies, 0.5):F0} ms, p99 {Percentile(sortedLatencies, 0.99):F0} ms; {after} stored versions are newer than its transactionTime {transactionTime:O}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"writes: the export equals the data as of its transactionTime: {compared} resources compared id by id and version by version; write statuses {string.Join(", ", codes.OrderBy(c => c.Key).Select(c => $"{c.Key}: {c.Value}"))}"));
        if (codes.Keys.Any(c => c >= 500))
        {
            throw new InvalidOperationException("a write answered 5xx");
        }
    }

    private static async Task ChurnAsync(string api, int apiPid, string pg, Dictionary<string, string> environment, TimeSpan duration)
    {
        string[] kickoffs = ["/$export", "/$export?_type=Patient,Observation", "/Patient/$export", "/$export?_type=Condition&_typeFilter=" + Uri.EscapeDataString("Condition?clinical-status=active")];
        var random = new Random(3);
        var counts = new ConcurrentDictionary<string, int>();
        var codes = new ConcurrentDictionary<int, int>();
        void Count(string what) => counts.AddOrUpdate(what, 1, (_, n) => n + 1);

        // Warm up (one export of each kind, completed and downloaded), then take the starting memory.
        foreach (var path in kickoffs)
        {
            var status = await KickoffAsync(api + path);
            await DownloadAsync(await WaitAsync(status, TimeSpan.FromMinutes(5)), keepVersions: false);
        }

        await Task.Delay(TimeSpan.FromSeconds(5));
        var startRss = Rss(apiPid);
        var watch = Stopwatch.StartNew();
        var active = new List<Task>();
        while (watch.Elapsed < duration)
        {
            active.RemoveAll(t => t.IsCompleted);
            if (active.Count >= 6)
            {
                await Task.WhenAny(active);
                continue;
            }

            var path = kickoffs[random.Next(kickoffs.Length)];
            var action = random.Next(4);
            var delay = random.Next(0, 3000);
            active.Add(Task.Run(async () =>
            {
                var status = await KickoffAsync(api + path);
                Count("kick-off");
                switch (action)
                {
                    case 0:
                        // Cancelled at once, or while it runs.
                        await Task.Delay(delay);
                        codes.AddOrUpdate((int)(await s_http.DeleteAsync(status)).StatusCode, 1, (_, n) => n + 1);
                        Count("cancelled");
                        break;
                    case 1:
                        // Completed, downloaded, then deleted by the client.
                        await DownloadAsync(await WaitAsync(status, TimeSpan.FromMinutes(5)), keepVersions: false);
                        codes.AddOrUpdate((int)(await s_http.DeleteAsync(status)).StatusCode, 1, (_, n) => n + 1);
                        Count("downloaded and deleted");
                        break;
                    default:
                        // Completed and left to expire.
                        await WaitAsync(status, TimeSpan.FromMinutes(5));
                        Count("left to expire");
                        break;
                }
            }));
        }

        await Task.WhenAll(active);
        // Past the TTL (20 s) and a few supervisor passes.
        await Task.Delay(TimeSpan.FromSeconds(30));
        var endRss = Rss(apiPid);

        long jobRows, partitionRows, fileRows, expired;
        await using (var connection = new NpgsqlConnection(pg))
        {
            await connection.OpenAsync();
            async Task<long> ScalarAsync(string sql)
            {
                await using var command = new NpgsqlCommand(sql, connection);
                return (long)(await command.ExecuteScalarAsync())!;
            }

            jobRows = await ScalarAsync("SELECT COUNT(*) FROM export_jobs");
            partitionRows = await ScalarAsync("SELECT COUNT(*) FROM export_partitions");
            fileRows = await ScalarAsync("SELECT COUNT(*) FROM export_files");
            var now = (DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).Ticks / 10;
            expired = await ScalarAsync($"SELECT COUNT(*) FROM export_jobs WHERE expires_at < {now}");
        }

        // The whole bucket, by the S3 API itself.
        using var s3 = new Amazon.S3.AmazonS3Client(
            new Amazon.Runtime.BasicAWSCredentials(environment["Helios__Export__S3__AccessKey"], environment["Helios__Export__S3__SecretKey"]),
            new Amazon.S3.AmazonS3Config { ServiceURL = environment["Helios__Export__S3__ServiceUrl"], ForcePathStyle = true, AuthenticationRegion = "us-east-1" });
        var bucket = environment["Helios__Export__S3__Bucket"];
        var objects = (await s3.ListObjectsV2Async(new Amazon.S3.Model.ListObjectsV2Request { BucketName = bucket })).S3Objects ?? [];
        var uploads = (await s3.ListMultipartUploadsAsync(new Amazon.S3.Model.ListMultipartUploadsRequest { BucketName = bucket })).MultipartUploads ?? [];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"churn: {duration.TotalMinutes:F1} min: {string.Join(", ", counts.OrderBy(c => c.Key).Select(c => $"{c.Key} {c.Value}"))}; DELETE statuses {string.Join(", ", codes.OrderBy(c => c.Key).Select(c => $"{c.Key}: {c.Value}"))}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"churn: afterwards {objects.Count} objects and {uploads.Count} unfinished uploads in the bucket; {jobRows} job rows ({expired} past their TTL), {partitionRows} partition rows, {fileRows} file rows"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"churn: Api resident memory {startRss / 1048576.0:F0} MiB after the warm-up, {endRss / 1048576.0:F0} MiB at the end ({(endRss - startRss) * 100.0 / startRss:+0.0;-0.0}%)"));
        if (objects.Count + uploads.Count + jobRows + partitionRows + fileRows > 0)
        {
            throw new InvalidOperationException("the churn left exports behind");
        }
    }

    private static double Percentile(double[] sorted, double p) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];

    private static long Rss(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    private static async Task<Dictionary<string, long>> CountsAsync(string pg)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        await using var connection = new NpgsqlConnection(pg);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT res_type, COUNT(*) FROM resources WHERE next_seq IS NULL AND deleted = 0 GROUP BY res_type", connection);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            counts[reader.GetString(0)] = reader.GetInt64(1);
        }

        return counts;
    }

    private static async Task<Uri> KickoffAsync(string url)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.TryAddWithoutValidation("Prefer", "respond-async");
        using var response = await s_http.SendAsync(request);
        if (response.StatusCode != HttpStatusCode.Accepted)
        {
            throw new InvalidOperationException($"kick-off {url}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }

        return response.Content.Headers.ContentLocation!;
    }

    private static async Task<JsonElement> WaitAsync(Uri status, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            using var response = await s_http.GetAsync(status);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
            }

            if (response.StatusCode == HttpStatusCode.ServiceUnavailable && response.Headers.RetryAfter?.Delta is { } wait && DateTime.UtcNow < deadline)
            {
                // Overloaded or the store unreachable: as a client should, wait as told.
                Console.Error.WriteLine($"status {status}: 503, retrying after {wait.TotalSeconds} s: {await response.Content.ReadAsStringAsync()}");
                await Task.Delay(wait);
                continue;
            }

            if (response.StatusCode != HttpStatusCode.Accepted || DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"status {status}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            }

            await Task.Delay(500);
        }
    }

    /// <summary>Every output file (following the Api's redirect to S3): per type, id → meta.versionId (or "" without
    /// versions). Each file's line count must match the manifest, and no id may appear twice in a type.</summary>
    private static async Task<Dictionary<string, Dictionary<string, string>>> DownloadAsync(JsonElement manifest, bool keepVersions)
    {
        var result = new Dictionary<string, Dictionary<string, string>>(StringComparer.Ordinal);
        foreach (var item in manifest.GetProperty("output").EnumerateArray())
        {
            var type = item.GetProperty("type").GetString()!;
            var ids = result.TryGetValue(type, out var existing) ? existing : result[type] = new(StringComparer.Ordinal);
            using var response = await s_http.GetAsync(item.GetProperty("url").GetString(), HttpCompletionOption.ResponseHeadersRead);
            response.EnsureSuccessStatusCode();
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            long lines = 0;
            while (await reader.ReadLineAsync() is { } line)
            {
                lines++;
                using var document = JsonDocument.Parse(line);
                var root = document.RootElement;
                var id = root.GetProperty("id").GetString()!;
                var version = keepVersions && root.TryGetProperty("meta", out var meta) && meta.TryGetProperty("versionId", out var v) ? v.GetString()! : string.Empty;
                if (!ids.TryAdd(id, version))
                {
                    throw new InvalidOperationException($"{type}/{id} is exported twice");
                }
            }

            if (lines != item.GetProperty("count").GetInt64())
            {
                throw new InvalidOperationException($"{item.GetProperty("url")}: {lines} lines, the manifest says {item.GetProperty("count")}");
            }
        }

        return result;
    }

    /// <summary>The Api and worker processes of one run.</summary>
    private sealed class Stack : IAsyncDisposable
    {
        private readonly List<Process> _processes = [];

        public int ApiPid { get; private set; }

        /// <summary>Niceness of the worker processes (0: the same CPU priority as the Api).</summary>
        public int WorkerNice { get; init; }

        public async Task<string> StartAsync(string project, Dictionary<string, string> environment)
        {
            var dll = Path.Combine(Path.GetDirectoryName(typeof(LoadBench).Assembly.Location)!.Replace(
                Path.Combine("bench", "Helios.Bench"), project, StringComparison.Ordinal), project + ".dll");
            var url = $"http://127.0.0.1:{TestTools.FreePort()}";
            var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add(dll);
            if (project == "Helios.Worker")
            {
                // Helios.Worker lowers its own threads (Helios:Worker:Nice).
                psi.Environment["Helios__Worker__Nice"] = WorkerNice.ToString(CultureInfo.InvariantCulture);
            }

            psi.Environment["ASPNETCORE_URLS"] = url;
            psi.Environment["Logging__LogLevel__Default"] = "Warning";
            // One line per entry, exception included: errors are printed whole.
            psi.Environment["Logging__Console__FormatterName"] = "json";
            foreach (var (key, value) in environment)
            {
                psi.Environment[key] = value;
            }

            var process = Process.Start(psi)!;
            _processes.Add(process);
            var name = project == "Helios.Api" ? "api" : $"worker{_processes.Count - 1}";
            process.OutputDataReceived += (_, e) => { if (e.Data is not null && e.Data.Contains("\"LogLevel\":\"Error\"", StringComparison.Ordinal)) { Console.Error.WriteLine($"{name}: {e.Data}"); } };
            process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { Console.Error.WriteLine($"{name}: {e.Data}"); } };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            if (project == "Helios.Api")
            {
                ApiPid = process.Id;
            }

            var deadline = DateTime.UtcNow.AddMinutes(2);
            while (true)
            {
                try
                {
                    if ((await s_http.GetAsync(url + "/health")).IsSuccessStatusCode)
                    {
                        return url;
                    }
                }
                catch (HttpRequestException)
                {
                }

                if (DateTime.UtcNow > deadline || process.HasExited)
                {
                    throw new InvalidOperationException($"{project} did not become healthy");
                }

                await Task.Delay(200);
            }
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var process in _processes)
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                    await process.WaitForExitAsync();
                }

                process.Dispose();
            }
        }
    }
}
