using System.Diagnostics;
using System.IO.Compression;
using System.Threading.Channels;
using Helios.Storage.Diagnostics;
using Helios.Storage.Fhir;
using Helios.Storage.Indexing;
using Hl7.Fhir.Model;
using Task = System.Threading.Tasks.Task;

namespace Helios.Storage.Loading;

/// <summary>
/// The fast load path: NDJSON (optionally gzipped) in, resources out to the store in large batches. Parsing and
/// index extraction of batch N+1 run on all cores but one while batch N is being written.
/// Lines stay UTF-8 bytes; each is checked structurally against the FHIR model straight on the JSON (unknown
/// elements, wrong JSON kinds, malformed dates and ids are refused) and indexed without building SDK objects
/// (<see cref="JsonResource"/>, <see cref="JsonIndexExtractor"/>); the stored text is the line's own JSON with the
/// assigned meta. A bad line is reported and skipped, the rest of its batch still loads.
/// </summary>
public sealed class NdjsonBulkLoader(IResourceStore store, IndexExtractor extractor)
{
    private readonly JsonIndexExtractor _jsonExtractor = new(extractor.Registry);

    public int BatchSize { get; init; } = 5000;

    /// <summary>When set, the search and history indexes are dropped for the load and rebuilt once at the end
    /// (counted in the elapsed time). Meant for loads while no server is searching the store.</summary>
    public ISchemaMigrator? DeferIndexesOf { get; init; }

    public sealed record LineError(string Source, long Line, string Message);

    /// <param name="PrepareTime">Wall time spent parsing, validating and indexing (in parallel).</param>
    /// <param name="WriteTime">Wall time spent in store writes (overlaps with preparing the next batch).</param>
    /// <param name="IndexBuildTime">Wall time spent building the deferred secondary indexes at the end.</param>
    public sealed record Result(long Loaded, long Failed, IReadOnlyList<LineError> Errors, TimeSpan Elapsed, TimeSpan PrepareTime = default, TimeSpan WriteTime = default, TimeSpan IndexBuildTime = default)
    {
        public double ResourcesPerSecond => Elapsed.TotalSeconds > 0 ? Loaded / Elapsed.TotalSeconds : 0;
    }

    /// <summary>Loads every file (<c>.ndjson</c> or <c>.ndjson.gz</c>; directories are expanded).</summary>
    public async Task<Result> LoadFilesAsync(IEnumerable<string> paths, CancellationToken cancellationToken)
    {
        var files = new List<string>();
        foreach (var path in paths)
        {
            if (Directory.Exists(path))
            {
                files.AddRange(Directory.EnumerateFiles(path, "*.ndjson*", SearchOption.AllDirectories).Order(StringComparer.Ordinal));
            }
            else if (File.Exists(path))
            {
                files.Add(path);
            }
            else
            {
                throw new FileNotFoundException($"No such file or directory: {path}", path);
            }
        }

        return await LoadAsync(ReadLinesAsync(files, cancellationToken), cancellationToken);
    }

    public static Stream OpenMaybeGzip(string path)
    {
        Stream stream = File.OpenRead(path);
        return path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(stream, CompressionMode.Decompress) : stream;
    }

    private static async IAsyncEnumerable<(string Source, long Line, ReadOnlyMemory<byte> Utf8)> ReadLinesAsync(
        List<string> files, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        foreach (var file in files)
        {
            await using var stream = OpenMaybeGzip(file);
            await foreach (var line in ReadLinesAsync(stream, Path.GetFileName(file), cancellationToken))
            {
                yield return line;
            }
        }
    }

    /// <summary>Splits a stream into its non-blank lines as UTF-8 bytes (no decoding: the JSON parser reads UTF-8).
    /// A leading byte order mark and trailing carriage returns are dropped.</summary>
    public static async IAsyncEnumerable<(string Source, long Line, ReadOnlyMemory<byte> Utf8)> ReadLinesAsync(
        Stream stream, string source, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var buffer = new byte[1 << 20];
        int start = 0, end = 0;
        long number = 0;
        var first = true;
        while (true)
        {
            var read = await stream.ReadAsync(buffer.AsMemory(end), cancellationToken);
            end += read;
            if (first && end >= 3)
            {
                first = false;
                if (buffer[0] == 0xEF && buffer[1] == 0xBB && buffer[2] == 0xBF)
                {
                    start = 3;
                }
            }

            while (true)
            {
                var newline = buffer.AsSpan(start, end - start).IndexOf((byte)'\n');
                if (newline < 0)
                {
                    break;
                }

                number++;
                if (Line(buffer.AsSpan(start, newline)) is { } line)
                {
                    yield return (source, number, line);
                }

                start += newline + 1;
            }

            if (read == 0)
            {
                if (start < end)
                {
                    number++;
                    if (Line(buffer.AsSpan(start, end - start)) is { } last)
                    {
                        yield return (source, number, last);
                    }
                }

                yield break;
            }

            // Keep the unfinished line at the front; grow when one line is larger than the buffer.
            if (start > 0)
            {
                buffer.AsSpan(start, end - start).CopyTo(buffer);
                end -= start;
                start = 0;
            }
            else if (end == buffer.Length)
            {
                Array.Resize(ref buffer, buffer.Length * 2);
            }
        }

        static byte[]? Line(ReadOnlySpan<byte> span)
        {
            span = span.TrimEnd((byte)'\r');
            return span.Trim(" \t"u8).IsEmpty ? null : span.ToArray();
        }
    }

    public async Task<Result> LoadAsync(IAsyncEnumerable<(string Source, long Line, ReadOnlyMemory<byte> Utf8)> lines, CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        LoadKeys? keys = null;
        if (DeferIndexesOf is { } schema)
        {
            await schema.DropSecondaryIndexesAsync(cancellationToken);
            // Into an empty store, the load tracks the versions it writes itself: no natural-key index to maintain
            // (a random insert per resource, the writer's largest single cost) and no lookups.
            if (await schema.TryDropNaturalKeyIndexAsync(cancellationToken))
            {
                keys = new LoadKeys();
            }
        }

        var errors = new List<LineError>();
        long loaded = 0;
        long prepareTicks = 0, writeTicks = 0;
        var indexBuild = TimeSpan.Zero;
        var channel = Channel.CreateBounded<List<PreparedResource>>(new BoundedChannelOptions(2) { SingleReader = true, SingleWriter = true });

        var writer = Task.Run(async () =>
        {
            await foreach (var batch in channel.Reader.ReadAllAsync(cancellationToken))
            {
                using var activity = StorageTelemetry.ActivitySource.StartActivity("helios.storage.bulk_batch");
                activity?.SetTag("helios.storage.batch_size", batch.Count);
                var writeStarted = Stopwatch.GetTimestamp();
                await store.LoadBatchAsync(batch, keys, cancellationToken);
                writeTicks += Stopwatch.GetTimestamp() - writeStarted;
                loaded += batch.Count;
                StorageTelemetry.BulkResourcesLoaded.Add(batch.Count);
                StorageTelemetry.BulkBatchDuration.Record(Stopwatch.GetElapsedTime(writeStarted).TotalSeconds);
            }
        }, cancellationToken);

        try
        {
            var pending = new List<(string Source, long Line, ReadOnlyMemory<byte> Utf8)>(BatchSize);
            await foreach (var line in lines.WithCancellation(cancellationToken))
            {
                pending.Add(line);
                if (pending.Count == BatchSize)
                {
                    var prepareStarted = Stopwatch.GetTimestamp();
                    var prepared = Prepare(pending, errors);
                    prepareTicks += Stopwatch.GetTimestamp() - prepareStarted;
                    await channel.Writer.WriteAsync(prepared, cancellationToken);
                    pending = new List<(string, long, ReadOnlyMemory<byte>)>(BatchSize);
                }
            }

            if (pending.Count > 0)
            {
                await channel.Writer.WriteAsync(Prepare(pending, errors), cancellationToken);
            }
        }
        finally
        {
            channel.Writer.TryComplete();
        }

        try
        {
            await writer;
        }
        finally
        {
            // Rebuild even after a failed batch, so the store is searchable again; a cancelled load is healed by the
            // next start (migrations re-create missing indexes).
            if (DeferIndexesOf is { } rebuild && !cancellationToken.IsCancellationRequested)
            {
                var buildStarted = Stopwatch.GetTimestamp();
                await rebuild.EnsureSecondaryIndexesAsync(CancellationToken.None);
                await rebuild.RefreshStatisticsAsync(CancellationToken.None);
                indexBuild = Stopwatch.GetElapsedTime(buildStarted);
            }
        }

        return new Result(loaded, errors.Count, errors, stopwatch.Elapsed, Stopwatch.GetElapsedTime(0, prepareTicks), Stopwatch.GetElapsedTime(0, writeTicks), indexBuild);
    }

    private List<PreparedResource> Prepare(List<(string Source, long Line, ReadOnlyMemory<byte> Utf8)> lines, List<LineError> errors)
    {
        var prepared = new PreparedResource?[lines.Count];
        var failures = new LineError?[lines.Count];
        // One core is left to the writer: it is the pipeline's bottleneck, and a third busy thread only slows it.
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, Environment.ProcessorCount - 1) };
        Parallel.For(0, lines.Count, parallel, i =>
        {
            var (source, number, utf8) = lines[i];
            try
            {
                using var json = JsonResource.TryParse(utf8, out var issues);
                if (json is null)
                {
                    failures[i] = new LineError(source, number, string.Join("; ", issues.Take(3)));
                    return;
                }

                prepared[i] = new PreparedResource(json, _jsonExtractor.Extract(json));
            }
            catch (FhirParseException ex)
            {
                // From the SDK's parse for the few expressions outside the compiled subset.
                failures[i] = new LineError(source, number, string.Join("; ", ex.Issues.Take(3)));
            }
            catch (Exception ex) when (ex is FormatException or InvalidOperationException or ArgumentException)
            {
                failures[i] = new LineError(source, number, $"The resource could not be indexed: {ex.Message}");
            }
        });

        var result = new List<PreparedResource>(lines.Count);
        for (var i = 0; i < lines.Count; i++)
        {
            if (prepared[i] is { } p)
            {
                result.Add(p);
            }
            else if (failures[i] is { } f)
            {
                errors.Add(f);
                StorageTelemetry.BulkLinesRejected.Add(1);
            }
        }

        return result;
    }

    /// <summary>Writes already-built resources (for example from the synthetic generator) in batches.</summary>
    public async Task<Result> LoadResourcesAsync(IEnumerable<Resource> resources, CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        long loaded = 0;
        foreach (var chunk in resources.Chunk(BatchSize))
        {
            var prepared = new PreparedResource[chunk.Length];
            Parallel.For(0, chunk.Length, i => prepared[i] = new PreparedResource(chunk[i], extractor.Extract(chunk[i])));
            await store.LoadBatchAsync(prepared, cancellationToken);
            loaded += chunk.Length;
        }

        return new Result(loaded, 0, [], stopwatch.Elapsed);
    }
}
