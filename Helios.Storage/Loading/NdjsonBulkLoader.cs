using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using System.Threading.Channels;
using Helios.Storage.Diagnostics;
using Helios.Storage.Fhir;
using Helios.Storage.Indexing;
using Hl7.Fhir.Model;
using Task = System.Threading.Tasks.Task;

namespace Helios.Storage.Loading;

/// <summary>
/// The fast load path: NDJSON (optionally gzipped) in, resources out to the store in large batches. Parsing and
/// index extraction of batch N+1 run on all cores while batch N is being written.
/// Each line is parsed structurally (unknown elements and wrong JSON kinds are refused); a bad line is reported and
/// skipped, the rest of its batch still loads.
/// </summary>
public sealed class NdjsonBulkLoader(IResourceStore store, IndexExtractor extractor)
{
    public int BatchSize { get; init; } = 5000;

    /// <summary>When set, the search and history indexes are dropped for the load and rebuilt once at the end
    /// (counted in the elapsed time). Meant for loads while no server is searching the store.</summary>
    public ISchemaMigrator? DeferIndexesOf { get; init; }

    public sealed record LineError(string Source, long Line, string Message);

    /// <param name="PrepareTime">Wall time spent parsing, validating and indexing (on all cores).</param>
    /// <param name="WriteTime">Wall time spent in store writes (overlaps with preparing the next batch).</param>
    public sealed record Result(long Loaded, long Failed, IReadOnlyList<LineError> Errors, TimeSpan Elapsed, TimeSpan PrepareTime = default, TimeSpan WriteTime = default)
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

    private static async IAsyncEnumerable<(string Source, long Line, string Text)> ReadLinesAsync(
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

    public static async IAsyncEnumerable<(string Source, long Line, string Text)> ReadLinesAsync(
        Stream stream, string source, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
        long number = 0;
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            number++;
            if (!string.IsNullOrWhiteSpace(line))
            {
                yield return (source, number, line);
            }
        }
    }

    public async Task<Result> LoadAsync(IAsyncEnumerable<(string Source, long Line, string Text)> lines, CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        if (DeferIndexesOf is { } schema)
        {
            await schema.DropSecondaryIndexesAsync(cancellationToken);
        }

        var errors = new List<LineError>();
        long loaded = 0;
        long prepareTicks = 0, writeTicks = 0;
        var channel = Channel.CreateBounded<List<PreparedResource>>(new BoundedChannelOptions(2) { SingleReader = true, SingleWriter = true });

        var writer = Task.Run(async () =>
        {
            await foreach (var batch in channel.Reader.ReadAllAsync(cancellationToken))
            {
                using var activity = StorageTelemetry.ActivitySource.StartActivity("helios.storage.bulk_batch");
                activity?.SetTag("helios.storage.batch_size", batch.Count);
                var writeStarted = Stopwatch.GetTimestamp();
                await store.LoadBatchAsync(batch, cancellationToken);
                writeTicks += Stopwatch.GetTimestamp() - writeStarted;
                loaded += batch.Count;
            }
        }, cancellationToken);

        try
        {
            var pending = new List<(string Source, long Line, string Text)>(BatchSize);
            await foreach (var line in lines.WithCancellation(cancellationToken))
            {
                pending.Add(line);
                if (pending.Count == BatchSize)
                {
                    var prepareStarted = Stopwatch.GetTimestamp();
                    var prepared = Prepare(pending, errors);
                    prepareTicks += Stopwatch.GetTimestamp() - prepareStarted;
                    await channel.Writer.WriteAsync(prepared, cancellationToken);
                    pending = new List<(string, long, string)>(BatchSize);
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
                await rebuild.EnsureSecondaryIndexesAsync(CancellationToken.None);
            }
        }

        return new Result(loaded, errors.Count, errors, stopwatch.Elapsed, Stopwatch.GetElapsedTime(0, prepareTicks), Stopwatch.GetElapsedTime(0, writeTicks));
    }

    private List<PreparedResource> Prepare(List<(string Source, long Line, string Text)> lines, List<LineError> errors)
    {
        var prepared = new PreparedResource?[lines.Count];
        var failures = new LineError?[lines.Count];
        Parallel.For(0, lines.Count, i =>
        {
            var (source, number, text) = lines[i];
            try
            {
                var resource = FhirJson.ParseResource(Encoding.UTF8.GetBytes(text), strict: false);
                if (string.IsNullOrEmpty(resource.Id))
                {
                    resource.Id = Guid.NewGuid().ToString();
                }

                prepared[i] = new PreparedResource(resource, extractor.Extract(resource));
            }
            catch (FhirParseException ex)
            {
                failures[i] = new LineError(source, number, string.Join("; ", ex.Issues.Take(3)));
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
