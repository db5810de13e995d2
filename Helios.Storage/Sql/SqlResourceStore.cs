using System.Collections.Concurrent;
using System.Data.Common;
using System.Globalization;
using Helios.Storage.Indexing;
using Task = System.Threading.Tasks.Task;

namespace Helios.Storage.Sql;

/// <summary>
/// The store logic shared by SQLite and PostgreSQL, in three files by responsibility: this one (the dialect's hooks
/// and the command helpers), <c>SqlResourceStore.Writes.cs</c> (versioned writes, the bulk load, the clock and the
/// index DDL) and <c>SqlResourceStore.Reads.cs</c> (read, vread, history, search with includes). The export reads
/// live in <see cref="SqlExportSource"/>. Writers are serialized by the <c>store_state</c> row (a row lock in
/// PostgreSQL, the single writer in SQLite), which hands out keys and timestamps, so keys commit in order: everything
/// at or below the highest committed key is a consistent snapshot.
/// </summary>
public abstract partial class SqlResourceStore(IndexExtractor extractor, TimeProvider timeProvider) : IResourceStore
{
    protected IndexExtractor Extractor => extractor;

    /// <summary>Opens a pooled connection with the dialect's session settings.</summary>
    protected internal abstract ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken);

    /// <summary>One write at a time in this process (see <see cref="BeginWriteAsync"/>).</summary>
    private readonly SemaphoreSlim _writerTurn = new(1, 1);

    /// <summary>Single writes waiting to be written in a group (see <c>WriteGroupedAsync</c>).</summary>
    private readonly ConcurrentQueue<QueuedWrite> _queuedWrites = new();

    /// <summary>Most single writes one transaction takes.</summary>
    private const int MaxWriteGroup = 256;

    /// <summary>The largest group written so far (tests).</summary>
    internal int LargestWriteGroup { get; private set; }

    private sealed class QueuedWrite(ResourceWrite write, PreparedResource? prepared, CancellationToken cancellationToken)
    {
        public ResourceWrite Write => write;

        public PreparedResource? Prepared => prepared;

        public CancellationToken CancellationToken => cancellationToken;

        public TaskCompletionSource<WriteOutcome> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Takes the writer turn until the result is disposed, so writes queue up behind it (tests).</summary>
    internal async Task<IAsyncDisposable> HoldWriterTurnAsync(CancellationToken cancellationToken)
    {
        await _writerTurn.WaitAsync(cancellationToken);
        return new TurnHold(_writerTurn);
    }

    private sealed class TurnHold(SemaphoreSlim turn) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            turn.Release();
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>Releases the writer turn's wait handle (for a dialect that is disposable).</summary>
    protected void DisposeWriterTurn() => _writerTurn.Dispose();

    /// <summary>Starts the dialect's write transaction on <paramref name="connection"/>.</summary>
    protected abstract ValueTask<DbTransaction> BeginWriteTransactionAsync(DbConnection connection, CancellationToken cancellationToken);

    /// <summary>Reads the clock row: (last seq, last timestamp in µs), locking it for the transaction.</summary>
    protected abstract Task<(long LastSeq, long LastTs)> ReadClockAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken);

    protected abstract Task<Dictionary<(string Type, string Id), CurrentVersion>> LookupCurrentAsync(
        DbConnection connection, DbTransaction transaction, IReadOnlyCollection<(string Type, string Id)> keys, CancellationToken cancellationToken);

    protected abstract Task InsertRowsAsync(DbConnection connection, DbTransaction transaction, IReadOnlyList<NewVersion> rows, CancellationToken cancellationToken);

    protected abstract Task SupersedeAsync(DbConnection connection, DbTransaction transaction, IReadOnlyList<(long OldSeq, long NewSeq)> pairs, CancellationToken cancellationToken);

    /// <summary>Runs DDL statements in one transaction (PostgreSQL: under the migration advisory lock).</summary>
    protected abstract Task ExecuteDdlAsync(IReadOnlyList<string> statements, CancellationToken cancellationToken);

    protected abstract bool IsPostgres { get; }

    /// <summary>Whether a write that failed with <paramref name="exception"/> is known to have left nothing
    /// (so its writes may be tried again).</summary>
    protected abstract bool RolledBack(Exception exception);

    /// <summary>Highest committed key (tests).</summary>
    internal async Task<long> GetLastSeqAsync(CancellationToken cancellationToken) =>
        await ScalarAsync("SELECT last_seq FROM store_state WHERE id = 1", [], cancellationToken);

    /// <summary>The clock's last timestamp in µs (tests).</summary>
    internal async Task<long> GetLastTimestampAsync(CancellationToken cancellationToken) =>
        await ScalarAsync("SELECT last_ts FROM store_state WHERE id = 1", [], cancellationToken);

    /// <summary>Current (not deleted) resources per type (tests and the benchmark).</summary>
    internal async Task<IReadOnlyDictionary<string, long>> CountByTypeAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT res_type, COUNT(*) FROM resources WHERE next_seq IS NULL AND deleted = 0 GROUP BY res_type";
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            result[reader.GetString(0)] = reader.GetInt64(1);
        }

        return result;
    }

    internal async Task<int> ExecuteAsync(string sql, IEnumerable<KeyValuePair<string, object>> parameters, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = CreateCommand(connection, sql, parameters);

        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    internal async Task<long> ScalarAsync(string sql, IEnumerable<KeyValuePair<string, object>> parameters, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = CreateCommand(connection, sql, parameters);

        var result = await command.ExecuteScalarAsync(cancellationToken);
        return Convert.ToInt64(result, CultureInfo.InvariantCulture);
    }

    internal async Task<List<StoredResource>> QueryAsync(string sql, IEnumerable<KeyValuePair<string, object>> parameters, CancellationToken cancellationToken, List<string?>? sortKeys = null)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = CreateCommand(connection, sql, parameters);

        var result = new List<StoredResource>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            result.Add(new StoredResource(
                reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetInt32(3),
                FhirDateRange.FromMicros(reader.GetInt64(4)), reader.GetInt32(5) != 0, reader.GetString(6)));
            if (sortKeys is not null)
            {
                sortKeys.Add(reader.IsDBNull(7) ? null : Convert.ToString(reader.GetValue(7), CultureInfo.InvariantCulture));
            }
        }

        return result;
    }

    /// <summary>A command with its named parameters bound.</summary>
    internal static DbCommand CreateCommand(DbConnection connection, string sql, IEnumerable<KeyValuePair<string, object>> parameters)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(parameters);
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            AddParameter(command, name, value);
        }

        return command;
    }

    internal static void AddParameter(DbCommand command, string name, object? value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value ?? DBNull.Value;
        command.Parameters.Add(parameter);
    }

    /// <summary>The version of a resource that is current at write time.</summary>
    protected internal sealed record CurrentVersion(long Seq, int Version, bool Deleted);

    /// <summary>A version about to be inserted.</summary>
    protected internal sealed class NewVersion(long seq, string type, string id, int version, long lastUpdated, PreparedResource? prepared)
    {
        public long Seq { get; } = seq;
        public string Type { get; } = type;
        public string Id { get; } = id;
        public int Version { get; } = version;
        public long LastUpdated { get; } = lastUpdated;
        /// <summary>A tombstone: no content, no index rows.</summary>
        public bool Deleted => Prepared is null;
        public PreparedResource? Prepared { get; } = prepared;
        public IndexEntries? Index => Prepared?.Index;
        /// <summary>The stored JSON as UTF-8 (empty for a tombstone), written to the database without re-encoding.</summary>
        public byte[] Utf8Json { get; set; } = [];

        public string Json => System.Text.Encoding.UTF8.GetString(Utf8Json);

        /// <summary>Set when a later write of the same batch replaces this version.</summary>
        public long? NextSeq { get; set; }

        public StoredResource ToStored() => new(Seq, Type, Id, Version, FhirDateRange.FromMicros(LastUpdated), Deleted, Json);
    }
}
