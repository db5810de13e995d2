using System.Collections.Concurrent;
using Helios.Export;
using Helios.Export.Jobs;
using Microsoft.Extensions.Options;

namespace Helios.Api.Export;

/// <summary>
/// What status polls read, shared for a moment (ADR 0016). Many clients polling one export, or one client polling
/// hard, cost the database one read of the job row (and, while it runs, one of its progress) per
/// <see cref="ExportOptions.StatusCacheTtl"/> per job; concurrent polls of a job wait on the same read. A completed
/// export's manifest is built once per base URL and served as bytes until the job expires (or, with presigned URLs,
/// for half their lifetime). Access checks and expiry are applied to every poll, against the shared job row.
/// A cancel through this process is seen at once (<see cref="Forget"/>); one through another Api within the interval.
/// </summary>
public sealed class ExportStatusCache(IExportJobStore jobs, TimeProvider timeProvider, IOptions<ExportOptions> options, IHostApplicationLifetime lifetime)
{
    private const int MaxJobs = 4096;
    private const int MaxManifests = 1024;
    private const long MaxManifestBytes = 64L * 1024 * 1024;

    private readonly ConcurrentDictionary<string, Entry> _jobs = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string JobId, string Key), CachedManifest> _manifests = new();
    private long _manifestBytes;

    /// <summary>The job row as last read (null: no such job), and its progress when it was running then.</summary>
    public sealed record JobStatus(ExportJob? Job, ExportProgress? Progress);

    /// <summary>The status of <paramref name="jobId"/>, read at most <see cref="ExportOptions.StatusCacheTtl"/> ago.</summary>
    public async Task<JobStatus> GetAsync(string jobId, CancellationToken cancellationToken)
    {
        var ttl = options.Value.StatusCacheTtl;
        if (ttl <= TimeSpan.Zero)
        {
            return await ReadAsync(jobId, cancellationToken);
        }

        while (true)
        {
            var now = timeProvider.GetTimestamp();
            _jobs.TryGetValue(jobId, out var current);
            if (current is not null && timeProvider.GetElapsedTime(current.StartedAt, now) < ttl && !current.Read.Value.IsFaulted && !current.Read.Value.IsCanceled)
            {
                return await current.Read.Value.WaitAsync(cancellationToken);
            }

            // One read for everyone polling this job now. It belongs to none of them, so one client giving up does
            // not fail the others' polls; it ends with the process.
            var next = new Entry(new Lazy<Task<JobStatus>>(() => ReadAsync(jobId, lifetime.ApplicationStopping)), now);
            if (current is null ? _jobs.TryAdd(jobId, next) : _jobs.TryUpdate(jobId, next, current))
            {
                if (current is null && _jobs.Count > MaxJobs)
                {
                    SweepJobs(now, ttl);
                }

                return await next.Read.Value.WaitAsync(cancellationToken);
            }
        }
    }

    /// <summary>The completed manifest built for <paramref name="jobId"/> under <paramref name="key"/> (base URL and URL kind), if still valid.</summary>
    public byte[]? GetManifest(string jobId, string key)
    {
        if (!_manifests.TryGetValue((jobId, key), out var manifest))
        {
            return null;
        }

        if (manifest.ValidUntil > timeProvider.GetUtcNow())
        {
            return manifest.Json;
        }

        Remove((jobId, key));
        return null;
    }

    /// <summary>Keeps a completed export's manifest (its JSON) until <paramref name="validUntil"/>.</summary>
    public void SetManifest(string jobId, string key, byte[] json, DateTimeOffset validUntil)
    {
        if (options.Value.StatusCacheTtl <= TimeSpan.Zero || json.Length > MaxManifestBytes / 8)
        {
            return;
        }

        if (_manifests.Count >= MaxManifests || Interlocked.Read(ref _manifestBytes) + json.Length > MaxManifestBytes)
        {
            SweepManifests();
        }

        var entryKey = (jobId, key);
        var added = new CachedManifest(json, validUntil);
        while (true)
        {
            if (_manifests.TryGetValue(entryKey, out var old))
            {
                if (_manifests.TryUpdate(entryKey, added, old))
                {
                    Interlocked.Add(ref _manifestBytes, json.Length - old.Json.Length);
                    return;
                }
            }
            else if (_manifests.TryAdd(entryKey, added))
            {
                Interlocked.Add(ref _manifestBytes, json.Length);
                return;
            }
        }
    }

    /// <summary>Drops all that is kept of <paramref name="jobId"/> (it was cancelled or deleted here).</summary>
    public void Forget(string jobId)
    {
        _jobs.TryRemove(jobId, out _);
        foreach (var key in _manifests.Keys.Where(k => string.Equals(k.JobId, jobId, StringComparison.Ordinal)))
        {
            Remove(key);
        }
    }

    private async Task<JobStatus> ReadAsync(string jobId, CancellationToken cancellationToken)
    {
        var job = await jobs.GetJobAsync(jobId, cancellationToken);
        var progress = job is { Status: ExportJobStatus.Running } ? await jobs.GetProgressAsync(jobId, cancellationToken) : null;
        return new JobStatus(job, progress);
    }

    private void SweepJobs(long now, TimeSpan ttl)
    {
        foreach (var (jobId, entry) in _jobs)
        {
            if (timeProvider.GetElapsedTime(entry.StartedAt, now) >= ttl)
            {
                _jobs.TryRemove(new KeyValuePair<string, Entry>(jobId, entry));
            }
        }
    }

    private void SweepManifests()
    {
        var now = timeProvider.GetUtcNow();
        foreach (var (key, manifest) in _manifests)
        {
            if (manifest.ValidUntil <= now)
            {
                Remove(key);
            }
        }

        // Still full of live manifests: start afresh rather than track use; they are rebuilt on the next poll.
        if (_manifests.Count >= MaxManifests || Interlocked.Read(ref _manifestBytes) > MaxManifestBytes / 2)
        {
            foreach (var key in _manifests.Keys)
            {
                Remove(key);
            }
        }
    }

    private void Remove((string JobId, string Key) key)
    {
        if (_manifests.TryRemove(key, out var removed))
        {
            Interlocked.Add(ref _manifestBytes, -removed.Json.Length);
        }
    }

    /// <summary>Compared by reference in <c>TryUpdate</c>: one entry per read.</summary>
    private sealed class Entry(Lazy<Task<JobStatus>> read, long startedAt)
    {
        public Lazy<Task<JobStatus>> Read { get; } = read;

        public long StartedAt { get; } = startedAt;
    }

    private sealed class CachedManifest(byte[] json, DateTimeOffset validUntil)
    {
        public byte[] Json { get; } = json;

        public DateTimeOffset ValidUntil { get; } = validUntil;
    }
}
