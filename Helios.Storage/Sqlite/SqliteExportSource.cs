using Helios.Storage.Sql;
using Microsoft.Data.Sqlite;

namespace Helios.Storage.Sqlite;

/// <summary>The export reads of the embedded store: the snapshot query runs as a raw SQLite statement whose JSON
/// column is appended to the part as the stored UTF-8 bytes.</summary>
public sealed class SqliteExportSource(SqliteResourceStore store) : SqlExportSource(store)
{
    protected override async Task<(long Rows, long LastSeq, bool StoppedEarly)> CopyRowsAsync(
        string sql, List<KeyValuePair<string, object>> parameters, NdjsonBuffer buffer, long maxBytes, CancellationToken cancellationToken)
    {
        await using var connection = (SqliteConnection)await store.OpenAsync(cancellationToken);
        // A sequential read of the whole table needs no large page cache; the default one (256 MiB per pooled
        // connection) would otherwise fill with exported pages and hold them (the next open resets it).
        await using (var pragma = connection.CreateCommand())
        {
            pragma.CommandText = "PRAGMA cache_size=-8192; PRAGMA mmap_size=0";
            await pragma.ExecuteNonQueryAsync(cancellationToken);
        }

        using var statement = new RawStatement(connection, sql);
        foreach (var (name, value) in parameters)
        {
            statement.Bind(name, value);
        }

        long rows = 0, lastSeq = 0;
        while (statement.Step())
        {
            lastSeq = statement.ColumnInt64(0);
            await buffer.EnsureRoomAsync(statement.ColumnBytes(1), cancellationToken);
            buffer.Append(statement.ColumnBlob(1));
            rows++;
            if (buffer.Total >= maxBytes)
            {
                return (rows, lastSeq, true);
            }
        }

        return (rows, lastSeq, false);
    }
}
