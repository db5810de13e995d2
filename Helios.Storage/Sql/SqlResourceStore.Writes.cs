using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using Helios.Storage.Diagnostics;
using Helios.Storage.Indexing;
using Helios.Storage.Snapshots;
using Task = System.Threading.Tasks.Task;

namespace Helios.Storage.Sql;

/// <summary>Writes: versioned writes and the bulk load (one transaction per call, under the writer lock), the
/// store clock, and the index DDL a bulk load uses.</summary>
public abstract partial class SqlResourceStore
{
    public Task DropSecondaryIndexesAsync(CancellationToken cancellationToken) =>
        ExecuteDdlAsync(Schema.SecondaryIndexes(IsPostgres).Select(i => $"DROP INDEX IF EXISTS {i.Name}").ToList(), cancellationToken);

    public virtual Task EnsureSecondaryIndexesAsync(CancellationToken cancellationToken) =>
        ExecuteDdlAsync([Schema.NaturalKeyIndex, .. Schema.SecondaryIndexes(IsPostgres).Select(i => $"CREATE INDEX IF NOT EXISTS {i.Name} ON {i.Definition}")], cancellationToken);

    /// <summary>PostgreSQL: <c>ANALYZE</c>. SQLite plans these queries well without statistics (its planner leans on
    /// the indexes' shapes), and gathering them over a large file takes long: nothing.</summary>
    public virtual Task RefreshStatisticsAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task<bool> TryDropNaturalKeyIndexAsync(CancellationToken cancellationToken)
    {
        // Under the writer lock, so that no write slips in between the check and the drop.
        await using var scope = await BeginWriteAsync(cancellationToken);
        var (connection, transaction) = (scope.Connection, scope.Transaction);
        await ReadClockAsync(connection, transaction, cancellationToken); // takes the clock row lock (PostgreSQL)
        await using (var any = connection.CreateCommand())
        {
            any.Transaction = transaction;
            any.CommandText = "SELECT COUNT(*) FROM (SELECT 1 FROM resources LIMIT 1) x";
            if (Convert.ToInt64(await any.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture) > 0)
            {
                return false;
            }
        }

        await using (var drop = connection.CreateCommand())
        {
            drop.Transaction = transaction;
            drop.CommandText = "DROP INDEX IF EXISTS ux_resources_version";
            await drop.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return true;
    }

    /// <summary>
    /// Opens a connection and begins a write transaction in this process's writer turn. Writes serialize on the
    /// store's clock anyway (SQLite has one writer; PostgreSQL's clock row lock orders every write), so waiting here
    /// costs no throughput, while it keeps writers queued in the process: a waiting write holds no pooled connection
    /// and does not add to a queue on the database's row lock. (Before this, 256 concurrent REST writes on
    /// PostgreSQL piled up on the lock and the store managed 23 writes/s at p50 3 s, against 80/s at 16 ms with 32.)
    /// </summary>
    protected async Task<WriteScope> BeginWriteAsync(CancellationToken cancellationToken)
    {
        await _writerTurn.WaitAsync(cancellationToken);
        try
        {
            return await BeginWriteInTurnAsync(_writerTurn, cancellationToken);
        }
        catch
        {
            _writerTurn.Release();
            throw;
        }
    }

    /// <summary>Opens the write's connection and transaction for a caller that holds the writer turn; the scope ends
    /// the turn when <paramref name="turn"/> is given (else the caller does).</summary>
    private async Task<WriteScope> BeginWriteInTurnAsync(SemaphoreSlim? turn, CancellationToken cancellationToken)
    {
        var connection = await OpenAsync(cancellationToken);
        try
        {
            return new WriteScope(connection, await BeginWriteTransactionAsync(connection, cancellationToken), turn);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>A write's connection and transaction, in the writer turn: disposing rolls back what was not
    /// committed, returns the connection and ends the turn.</summary>
    protected sealed class WriteScope(DbConnection connection, DbTransaction transaction, SemaphoreSlim? turn) : IAsyncDisposable
    {
        public DbConnection Connection => connection;

        public DbTransaction Transaction => transaction;

        public async ValueTask DisposeAsync()
        {
            try
            {
                await transaction.DisposeAsync();
                await connection.DisposeAsync();
            }
            finally
            {
                turn?.Release();
            }
        }
    }

    public async Task<IReadOnlyList<WriteOutcome>> WriteAsync(IReadOnlyList<ResourceWrite> writes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(writes);
        var prepared = writes.Select(w => w.Resource is null ? null : new PreparedResource(w.Resource, extractor.Extract(w.Resource))).ToList();
        if (writes.Count == 1)
        {
            return [await WriteGroupedAsync(writes[0], prepared[0], cancellationToken)];
        }

        return await WriteCoreAsync(writes, prepared, returnResources: true, loadKeys: null, cancellationToken);
    }

    /// <summary>
    /// Group commit of single writes (ADR 0017). The write joins a queue and waits for the writer turn or for its own
    /// result, whichever comes first. Whoever gets the turn writes everything queued (up to
    /// <see cref="MaxWriteGroup"/> at a time, its own write among them) in one transaction: one clock lock, one commit,
    /// one flush, however many writers wait. Each write keeps its own outcome: a conflict (If-Match, create of an
    /// existing id) fails that write alone, as it would have alone. Should the database refuse the group, each of its
    /// writes is tried again on its own, so one bad write cannot fail the others (only when the database reports that it
    /// rolled the group back: after a lost connection the commit may have been applied, and every write gets the error).
    /// </summary>
    private async Task<WriteOutcome> WriteGroupedAsync(ResourceWrite write, PreparedResource? prepared, CancellationToken cancellationToken)
    {
        var mine = new QueuedWrite(write, prepared, cancellationToken);
        _queuedWrites.Enqueue(mine);
        var turn = _writerTurn.WaitAsync(cancellationToken);
        if (await Task.WhenAny(turn, mine.Result.Task) != turn)
        {
            // Written in another writer's turn. The turn, when it comes, is passed on at once.
            _ = turn.ContinueWith(static (t, state) => ((SemaphoreSlim)state!).Release(), _writerTurn,
                CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            return await mine.Result.Task;
        }

        // Cancelled while waiting: the write stays queued, and the next turn drops it unwritten.
        await turn;
        try
        {
            // Until this write is done: it stays queued until a turn holder takes it, and each group is written in full.
            while (!mine.Result.Task.IsCompleted)
            {
                var group = new List<QueuedWrite>();
                while (group.Count < MaxWriteGroup && _queuedWrites.TryDequeue(out var next))
                {
                    if (next.CancellationToken.IsCancellationRequested)
                    {
                        next.Result.TrySetCanceled(next.CancellationToken);
                    }
                    else
                    {
                        group.Add(next);
                    }
                }

                await WriteGroupAsync(group);
            }
        }
        finally
        {
            _writerTurn.Release();
        }

        return await mine.Result.Task;
    }

    /// <summary>Writes a group in the writer turn and completes each of its writes. The group's writers may have
    /// given up on other grounds meanwhile, so the write itself takes no one's cancellation.</summary>
    private async Task WriteGroupAsync(List<QueuedWrite> group)
    {
        if (group.Count == 0)
        {
            return;
        }

        LargestWriteGroup = Math.Max(LargestWriteGroup, group.Count);
        StorageTelemetry.WriteGroupSize.Record(group.Count);
        var conflicts = new ResourceConflictException?[group.Count];
        IReadOnlyList<WriteOutcome> outcomes;
        try
        {
            await using var scope = await BeginWriteInTurnAsync(null, CancellationToken.None);
            outcomes = await WriteInScopeAsync(scope, group.Select(g => g.Write).ToList(), group.Select(g => g.Prepared).ToList(),
                returnResources: true, loadKeys: null, conflicts, CancellationToken.None);
        }
        catch (Exception ex) when (group.Count > 1 && RolledBack(ex))
        {
            // The database refused the group and kept nothing of it: find out whose write it was.
            StorageTelemetry.WriteGroupsRetried.Add(1);
            foreach (var queued in group)
            {
                await WriteGroupAsync([queued]);
            }

            return;
        }
        catch (Exception ex)
        {
            group.ForEach(g => g.Result.TrySetException(ex));
            return;
        }

        for (var i = 0; i < group.Count; i++)
        {
            if (conflicts[i] is { } conflict)
            {
                group[i].Result.TrySetException(conflict);
            }
            else
            {
                group[i].Result.TrySetResult(outcomes[i]);
            }
        }
    }

    public Task LoadBatchAsync(IReadOnlyList<PreparedResource> batch, CancellationToken cancellationToken) =>
        LoadBatchAsync(batch, null, cancellationToken);

    public async Task LoadBatchAsync(IReadOnlyList<PreparedResource> batch, LoadKeys? keys, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var writes = batch.Select(b => new ResourceWrite(WriteKind.Update, b.Type, b.Id, b.Resource)).ToList();
        // A load reports nothing per resource: no stored text is decoded back into a string (a 2-byte-per-char
        // copy of every resource, on the writer's thread).
        await WriteCoreAsync(writes, batch, returnResources: false, keys, cancellationToken);
    }

    private async Task<IReadOnlyList<WriteOutcome>> WriteCoreAsync(IReadOnlyList<ResourceWrite> writes, IReadOnlyList<PreparedResource?> prepared, bool returnResources, LoadKeys? loadKeys, CancellationToken cancellationToken)
    {
        if (writes.Count == 0)
        {
            return [];
        }

        await using var scope = await BeginWriteAsync(cancellationToken);
        return await WriteInScopeAsync(scope, writes, prepared, returnResources, loadKeys, conflicts: null, cancellationToken);
    }

    /// <summary>Writes in one transaction. A conflict fails the whole call (a transaction bundle, a load), unless
    /// <paramref name="conflicts"/> is given: then it is recorded there for that write alone, which is skipped.</summary>
    private async Task<IReadOnlyList<WriteOutcome>> WriteInScopeAsync(WriteScope scope, IReadOnlyList<ResourceWrite> writes, IReadOnlyList<PreparedResource?> prepared,
        bool returnResources, LoadKeys? loadKeys, ResourceConflictException?[]? conflicts, CancellationToken cancellationToken)
    {
        using var activity = StorageTelemetry.ActivitySource.StartActivity("helios.storage.write");
        activity?.SetTag("helios.storage.backend", IsPostgres ? "postgresql" : "sqlite");
        activity?.SetTag("helios.storage.writes", writes.Count);
        var started = Stopwatch.GetTimestamp();
        var (connection, transaction) = (scope.Connection, scope.Transaction);
        var keys = writes.Select(w => (w.Type, w.Id)).Distinct().ToList();
        long lastSeq, lastTs;
        Dictionary<(string Type, string Id), CurrentVersion> current;
        if (loadKeys is null)
        {
            ((lastSeq, lastTs), current) = await ReadClockAndLookupAsync(connection, transaction, keys, cancellationToken);
        }
        else
        {
            (lastSeq, lastTs) = await ReadClockAsync(connection, transaction, cancellationToken);
            current = (await loadKeys.LookupAsync(keys, seq => ReadKeyOfSeqAsync(connection, transaction, seq, cancellationToken)))
                .ToDictionary(e => e.Key, e => new CurrentVersion(e.Value.Seq, e.Value.Number, e.Value.Deleted));
        }

        var ts = Math.Max(FhirDateRange.ToMicros(timeProvider.GetUtcNow()), lastTs + 1);

        var rows = new List<NewVersion>(writes.Count);
        var inBatch = new Dictionary<long, NewVersion>();
        var superseded = new List<(long, long)>();
        var outcomes = new WriteOutcome[writes.Count];
        var rowOf = new int[writes.Count];
        for (var i = 0; i < writes.Count; i++)
        {
            rowOf[i] = -1;
            var write = writes[i];
            var key = (write.Type, write.Id);
            current.TryGetValue(key, out var existing);
            var exists = existing is { Deleted: false };
            ResourceConflictException? conflict = null;
            if (write.IfMatchVersion is { } expected && (existing is null || existing.Version != expected || existing.Deleted))
            {
                var actual = existing is null ? "it does not exist" : existing.Deleted ? "it is deleted" : $"the current version is {existing.Version}";
                conflict = new ResourceConflictException($"{write.Type}/{write.Id}: If-Match asked for version {expected} but {actual}.", conflicts is null ? i : 0, isVersionMismatch: true);
            }
            else if (write.Kind == WriteKind.Create && exists)
            {
                conflict = new ResourceConflictException($"{write.Type}/{write.Id} already exists.", conflicts is null ? i : 0, isVersionMismatch: false);
            }

            if (conflict is not null)
            {
                if (conflicts is null)
                {
                    throw conflict;
                }

                conflicts[i] = conflict;
                continue;
            }

            if (write.Kind == WriteKind.Delete && !exists)
            {
                outcomes[i] = new WriteOutcome(WriteStatus.NothingToDelete, null);
                continue;
            }

            var seq = ++lastSeq;
            var version = (existing?.Version ?? 0) + 1;
            var row = new NewVersion(seq, write.Type, write.Id, version, ts++, write.Kind == WriteKind.Delete ? null : prepared[i]);
            rowOf[i] = rows.Count;
            rows.Add(row);
            inBatch[seq] = row;
            if (existing is not null)
            {
                if (inBatch.TryGetValue(existing.Seq, out var earlier))
                {
                    earlier.NextSeq = seq;
                }
                else
                {
                    superseded.Add((existing.Seq, seq));
                }
            }

            current[key] = new CurrentVersion(seq, version, row.Deleted);
            outcomes[i] = new WriteOutcome(
                row.Deleted ? WriteStatus.Deleted : exists ? WriteStatus.Updated : WriteStatus.Created, null);
        }

        Serialize(rows);
        // Mark the replaced versions superseded, then add the new ones. With nothing to write (deletes of nothing,
        // refused writes) the clock is left as it was: the transaction ends without a change.
        if (rows.Count > 0 && !await WriteVersionsAsync(connection, transaction, superseded, rows, lastSeq, ts - 1, cancellationToken))
        {
            await transaction.CommitAsync(cancellationToken);
        }
        if (loadKeys is not null)
        {
            foreach (var key in keys)
            {
                if (current.TryGetValue(key, out var version))
                {
                    loadKeys.Record(key, new LoadKeys.Version(version.Seq, version.Version, version.Deleted));
                }
            }
        }

        StorageTelemetry.WriteDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
        foreach (var group in rows.GroupBy(x => x.Type))
        {
            StorageTelemetry.VersionsWritten.Add(group.Count(), new KeyValuePair<string, object?>("resource_type", group.Key));
        }

        for (var i = 0; returnResources && i < outcomes.Length; i++)
        {
            if (rowOf[i] >= 0)
            {
                outcomes[i] = outcomes[i] with { Resource = rows[rowOf[i]].ToStored() };
            }
        }

        return outcomes;
    }

    private static void Serialize(List<NewVersion> rows)
    {
        static void One(NewVersion row)
        {
            row.Utf8Json = row.Prepared is { } prepared ? prepared.Compose(row.Version, FhirDateRange.FromMicros(row.LastUpdated)) : [];
        }

        if (rows.Count < 64)
        {
            rows.ForEach(One);
        }
        else
        {
            Parallel.ForEach(rows, One);
        }
    }

    /// <summary>The type and id stored under a key (to confirm a <see cref="LoadKeys"/> hash match).</summary>
    private static async Task<(string Type, string Id)?> ReadKeyOfSeqAsync(DbConnection connection, DbTransaction transaction, long seq, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "SELECT res_type, res_id FROM resources WHERE seq = @s";
        AddParameter(command, "@s", seq);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? (reader.GetString(0), reader.GetString(1)) : null;
    }

    /// <summary>Takes the clock (and with it the writer lock) and looks up the current versions of the keys (a dialect
    /// may send both at once).</summary>
    protected virtual async Task<((long LastSeq, long LastTs) Clock, Dictionary<(string Type, string Id), CurrentVersion> Current)> ReadClockAndLookupAsync(
        DbConnection connection, DbTransaction transaction, IReadOnlyCollection<(string Type, string Id)> keys, CancellationToken cancellationToken)
    {
        var clock = await ReadClockAsync(connection, transaction, cancellationToken);
        return (clock, await LookupCurrentAsync(connection, transaction, keys, cancellationToken));
    }

    /// <summary>Marks the replaced versions superseded, adds the new ones, and advances the clock (a dialect may send
    /// them together, and the commit with them: it returns true then).</summary>
    protected virtual async Task<bool> WriteVersionsAsync(DbConnection connection, DbTransaction transaction, IReadOnlyList<(long OldSeq, long NewSeq)> superseded,
        IReadOnlyList<NewVersion> rows, long lastSeq, long lastTs, CancellationToken cancellationToken)
    {
        await SupersedeAsync(connection, transaction, superseded, cancellationToken);
        await InsertRowsAsync(connection, transaction, rows, cancellationToken);
        await WriteClockAsync(connection, transaction, lastSeq, lastTs, cancellationToken);
        return false;
    }

    private static async Task WriteClockAsync(DbConnection connection, DbTransaction transaction, long lastSeq, long lastTs, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "UPDATE store_state SET last_seq = @s, last_ts = @t WHERE id = 1";
        AddParameter(command, "@s", lastSeq);
        AddParameter(command, "@t", lastTs);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }


    /// <summary>Fixes an export's point in time under the writer lock (see <see cref="IExportSource.CaptureSnapshotAsync"/>).</summary>
    internal async Task<StoreSnapshot> CaptureSnapshotAsync(CancellationToken cancellationToken)
    {
        await using var scope = await BeginWriteAsync(cancellationToken);
        var (connection, transaction) = (scope.Connection, scope.Transaction);
        var (lastSeq, lastTs) = await ReadClockAsync(connection, transaction, cancellationToken);
        var ts = Math.Max(FhirDateRange.ToMicros(timeProvider.GetUtcNow()), lastTs);
        await WriteClockAsync(connection, transaction, lastSeq, ts, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return new StoreSnapshot(lastSeq, FhirDateRange.FromMicros(ts));
    }
}
