// Bulk load benchmark: Helios's load path (parse + validate structure + index + write) against the raw insert
// speed of the same machine for the same rows, on SQLite and PostgreSQL, in one run.
//   dotnet run -c Release --project bench/Helios.Bench -- [--resources N] [--source synthetic|synthea] [--backends sqlite,postgres]
// Export benchmark (see ExportBench.cs):
//   dotnet run -c Release --project bench/Helios.Bench -- --export [--resources N] [--source ...] [--topologies embedded,postgres-s3,postgres-local]
// Load benchmarks on postgres-s3 with worker processes (see LoadBench.cs):
//   ... -- --concurrent [--clients 20] [--pollers 100] [--workers 2] [--poll-interval-ms 100] [--resources 50000]
//   ... -- --writes [--rate 100] [--resources 1000000]
//   ... -- --churn [--minutes 10] [--resources 20000]
using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using Helios.Storage.Fhir;
using Helios.Storage.Indexing;
using Helios.Storage.Loading;
using Helios.Storage.Postgres;
using Helios.Storage.Sqlite;
using Helios.Storage.Synthetic;
using Helios.Testing;
using Microsoft.Data.Sqlite;
using Npgsql;
using NpgsqlTypes;

if (args.Contains("--concurrent") || args.Contains("--writes") || args.Contains("--churn"))
{
    await LoadBench.RunAsync(args, (path, count, kind) => WriteInput(path, count, kind));
    return;
}

if (args.Contains("--export"))
{
    await ExportBench.RunAsync(args, (path, count, kind) => WriteInput(path, count, kind));
    return;
}

if (args.Contains("--prepare-only"))
{
    // The load's CPU stages on one thread, without a store: parse + structural check + template, index extraction,
    // composing the stored text. For profiling (`perf record`), and to see what a resource costs before any write.
    var n = ResourcesArg(50_000);
    var file = Path.Combine(Path.GetTempPath(), "helios-prepare-" + Guid.NewGuid().ToString("N")[..8] + ".ndjson");
    WriteInput(file, n, "synthea");
    var input = File.ReadAllLines(file).Select(l => (ReadOnlyMemory<byte>)Encoding.UTF8.GetBytes(l)).ToList();
    File.Delete(file);
    var jsonExtractor = new JsonIndexExtractor(SearchParameterRegistry.Instance);
    for (var pass = 0; pass < 4; pass++)
    {
        long parse = 0, extract = 0, compose = 0, rows = 0;
        foreach (var line in input)
        {
            var t0 = Stopwatch.GetTimestamp();
            using var json = JsonResource.TryParse(line, out _) ?? throw new InvalidOperationException("bad line");
            var t1 = Stopwatch.GetTimestamp();
            var entries = jsonExtractor.Extract(json);
            var t2 = Stopwatch.GetTimestamp();
            var prepared = new Helios.Storage.PreparedResource(json, entries);
            _ = prepared.Compose(1, DateTimeOffset.UtcNow);
            compose += Stopwatch.GetTimestamp() - t2;
            parse += t1 - t0;
            extract += t2 - t1;
            rows += entries.Count;
        }

        double Us(long ticks) => Stopwatch.GetElapsedTime(0, ticks).TotalMicroseconds / input.Count;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"pass {pass}: parse+check+template {Us(parse):F1} us, extract {Us(extract):F1} us, compose {Us(compose):F1} us per resource; {rows / (double)input.Count:F2} index rows per resource"));
    }

    return;
}

if (args.Contains("--write-only"))
{
    // The store's write of already prepared resources, alone (prepared up front, in memory): for profiling the writer.
    var n = ResourcesArg(100_000);
    var dir = Path.Combine(Path.GetTempPath(), "helios-write-" + Guid.NewGuid().ToString("N")[..8]);
    Directory.CreateDirectory(dir);
    var file = Path.Combine(dir, "in.ndjson");
    WriteInput(file, n, "synthea");
    var jsonExtractor = new JsonIndexExtractor(SearchParameterRegistry.Instance);
    var prepared = File.ReadAllLines(file).AsParallel().AsOrdered().Select(l =>
    {
        using var json = JsonResource.TryParse(Encoding.UTF8.GetBytes(l), out _)!;
        return new Helios.Storage.PreparedResource(json, jsonExtractor.Extract(json));
    }).ToList();
    var store = new SqliteResourceStore(Path.Combine(dir, "w.db"), new IndexExtractor(SearchParameterRegistry.Instance), TimeProvider.System);
    await store.MigrateAsync(CancellationToken.None);
    // As the loader does with deferred indexes into an empty store.
    await store.DropSecondaryIndexesAsync(CancellationToken.None);
    var keys = await store.TryDropNaturalKeyIndexAsync(CancellationToken.None) ? new Helios.Storage.LoadKeys() : null;
    Console.WriteLine("writing...");
    var sw = Stopwatch.StartNew();
    foreach (var chunk in prepared.Chunk(5000))
    {
        await store.LoadBatchAsync(chunk, keys, CancellationToken.None);
    }

    var write = sw.Elapsed;
    await store.EnsureSecondaryIndexesAsync(CancellationToken.None);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"sqlite write {write.TotalMicroseconds / n:F1} us per resource, index build {(sw.Elapsed - write).TotalMicroseconds / n:F1} us per resource"));
    SqliteConnection.ClearAllPools();
    Directory.Delete(dir, recursive: true);
    return;
}

var resources = 200_000;
var source = "synthea";
var backends = new[] { "sqlite", "postgres" };
var deferIndexes = true;
var keep = false;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--resources": resources = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--source": source = args[++i]; break;
        case "--backends": backends = args[++i].Split(','); break;
        case "--no-defer": deferIndexes = false; break;
        case "--keep": keep = true; break;
    }
}

var work = Path.Combine(Path.GetTempPath(), "helios-bench-" + Guid.NewGuid().ToString("N")[..8]);
Directory.CreateDirectory(work);
var ndjson = Path.Combine(work, "data.ndjson");
var lines = WriteInput(ndjson, resources, source);
var bytes = new FileInfo(ndjson).Length;
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"input: {lines} resources, {bytes / 1048576.0:F1} MiB NDJSON ({source}), {Environment.ProcessorCount} cores, secondary indexes {(deferIndexes ? "built after the load (included in the time)" : "maintained row by row")}"));

var extractor = new IndexExtractor(SearchParameterRegistry.Instance);
// The raw baselines read the rows from the file as they go, so no input stays in memory during Helios's load.
IEnumerable<(string Type, string Id, string Json)> Rows() => File.ReadLines(ndjson).Select(l =>
{
    using var doc = System.Text.Json.JsonDocument.Parse(l);
    return (doc.RootElement.GetProperty("resourceType").GetString()!, doc.RootElement.GetProperty("id").GetString()!, l);
});

foreach (var backend in backends)
{
    if (backend == "sqlite")
    {
        var raw = Time(() => RawSqlite(Path.Combine(work, "raw.db"), Rows()));
        var store = new SqliteResourceStore(Path.Combine(work, "helios.db"), extractor, TimeProvider.System);
        await store.MigrateAsync(CancellationToken.None);
        Console.WriteLine("sqlite    loading...");
        var result = await new NdjsonBulkLoader(store, extractor) { DeferIndexesOf = deferIndexes ? store : null }.LoadFilesAsync([ndjson], CancellationToken.None);
        Report("sqlite", lines, raw, result);
    }
    else
    {
        var server = await PostgresServer.GetAsync();
        var rawCs = await server.CreateDatabaseAsync("bench_raw");
        var raw = Time(() => RawCopy(rawCs, Rows()).GetAwaiter().GetResult());
        await using var dataSource = NpgsqlDataSource.Create(await server.CreateDatabaseAsync("bench_helios"));
        var store = new PostgresResourceStore(dataSource, extractor, TimeProvider.System);
        await store.MigrateAsync(CancellationToken.None);
        Console.WriteLine("postgres  loading...");
        var result = await new NdjsonBulkLoader(store, extractor) { DeferIndexesOf = deferIndexes ? store : null }.LoadFilesAsync([ndjson], CancellationToken.None);
        Report("postgres", lines, raw, result);
    }
}

await (await PostgresServer.GetAsync()).DisposeAsync();
SqliteConnection.ClearAllPools();
if (keep)
{
    Console.WriteLine($"kept: {work}");
}
else
{
    Directory.Delete(work, recursive: true);
}

return;

int ResourcesArg(int fallback) =>
    args.SkipWhile(a => a != "--resources").Skip(1).Select(a => int.Parse(a, CultureInfo.InvariantCulture)).FirstOrDefault(fallback);

static void Report(string backend, long lines, TimeSpan raw, NdjsonBulkLoader.Result result) =>
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{backend,-9} helios load: {result.Loaded} in {result.Elapsed.TotalSeconds,6:F1} s = {result.ResourcesPerSecond,8:F0} resources/s | raw insert of the same rows: {raw.TotalSeconds,6:F1} s = {lines / raw.TotalSeconds,8:F0} rows/s | ratio {result.Elapsed / raw:F2}x | rejected {result.Failed} | prepare {result.PrepareTime.TotalSeconds:F1} s, write {result.WriteTime.TotalSeconds:F1} s, index build {result.IndexBuildTime.TotalSeconds:F1} s"));

static TimeSpan Time(Action action)
{
    var sw = Stopwatch.StartNew();
    action();
    return sw.Elapsed;
}

// The baseline: the same (type, id, json) rows into one table, one transaction, a prepared statement.
static void RawSqlite(string path, IEnumerable<(string Type, string Id, string Json)> rows)
{
    using var c = new SqliteConnection($"Data Source={path}");
    c.Open();
    using (var ddl = c.CreateCommand())
    {
        ddl.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; CREATE TABLE raw (seq INTEGER PRIMARY KEY, res_type TEXT, res_id TEXT, json TEXT)";
        ddl.ExecuteNonQuery();
    }

    using var tx = c.BeginTransaction();
    using var cmd = c.CreateCommand();
    cmd.Transaction = tx;
    cmd.CommandText = "INSERT INTO raw VALUES (@s, @t, @i, @j)";
    var s = cmd.Parameters.Add("@s", SqliteType.Integer);
    var t = cmd.Parameters.Add("@t", SqliteType.Text);
    var i = cmd.Parameters.Add("@i", SqliteType.Text);
    var j = cmd.Parameters.Add("@j", SqliteType.Text);
    cmd.Prepare();
    long n = 0;
    foreach (var row in rows)
    {
        s.Value = ++n;
        t.Value = row.Type;
        i.Value = row.Id;
        j.Value = row.Json;
        cmd.ExecuteNonQuery();
    }

    tx.Commit();
}

static async Task RawCopy(string cs, IEnumerable<(string Type, string Id, string Json)> rows)
{
    await using var c = new NpgsqlConnection(cs);
    await c.OpenAsync();
    await using (var ddl = new NpgsqlCommand("CREATE TABLE raw (seq BIGINT PRIMARY KEY, res_type TEXT, res_id TEXT, json TEXT)", c))
    {
        await ddl.ExecuteNonQueryAsync();
    }

    await using var w = await c.BeginBinaryImportAsync("COPY raw FROM STDIN (FORMAT BINARY)");
    long n = 0;
    foreach (var row in rows)
    {
        await w.StartRowAsync();
        await w.WriteAsync(++n, NpgsqlDbType.Bigint);
        await w.WriteAsync(row.Type, NpgsqlDbType.Text);
        await w.WriteAsync(row.Id, NpgsqlDbType.Text);
        await w.WriteAsync(row.Json, NpgsqlDbType.Text);
    }

    await w.CompleteAsync();
}

// Synthea: the synthea-r4-100 NDJSON replicated with fresh ids (references rewritten consistently);
// synthetic: the project's own generator.
static long WriteInput(string path, int count, string source)
{
    using var writer = new StreamWriter(path, false, new UTF8Encoding(false));
    long written = 0;
    if (source == "synthea" && FindSynthea() is { } dir)
    {
        var files = Directory.GetFiles(dir, "*.ndjson.gz").Order(StringComparer.Ordinal).ToList();
        var originals = files.SelectMany(f =>
        {
            using var gz = new GZipStream(File.OpenRead(f), CompressionMode.Decompress);
            using var reader = new StreamReader(gz);
            var list = new List<string>();
            while (reader.ReadLine() is { } l)
            {
                list.Add(l);
            }

            return list;
        }).ToList();
        for (var copy = 0; written < count; copy++)
        {
            foreach (var line in originals)
            {
                if (written >= count)
                {
                    break;
                }

                // Every id and reference gets the copy number as a suffix: each copy is a distinct, consistent data set.
                var text = copy == 0 ? line : System.Text.RegularExpressions.Regex.Replace(line, "(\"id\":\"|\"reference\":\"[A-Za-z]+/)([0-9a-f-]{36}|[A-Za-z0-9.-]+)\"", m => $"{m.Groups[1].Value}{m.Groups[2].Value}-{copy}\"");
                writer.WriteLine(text);
                written++;
            }
        }

        return written;
    }

    var patients = Math.Max(1, count / 21);
    foreach (var resource in new SyntheticDataGenerator(seed: 1).Generate(patients))
    {
        writer.WriteLine(FhirJson.Serialize(resource));
        if (++written >= count)
        {
            break;
        }
    }

    return written;
}

static string? FindSynthea()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
    {
        var candidate = Path.Combine(dir.FullName, "shared", "data", "synthea-r4-100", "ndjson");
        if (Directory.Exists(candidate))
        {
            return candidate;
        }
    }

    return null;
}
