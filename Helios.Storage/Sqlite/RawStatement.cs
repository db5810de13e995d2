using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Helios.Storage.Sqlite;

/// <summary>
/// A prepared statement driven through SQLitePCL directly, for the bulk insert path: about 2.5 times faster per
/// row than ADO.NET parameters. Runs on the connection (and so inside the transaction) it was prepared on.
/// </summary>
internal sealed class RawStatement : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _statement;

    public RawStatement(SqliteConnection connection, string sql)
    {
        _db = connection.Handle ?? throw new InvalidOperationException("The SQLite connection is not open.");
        Check(raw.sqlite3_prepare_v2(_db, sql, out _statement));
    }

    public RawStatement Bind(int index, long value)
    {
        Check(raw.sqlite3_bind_int64(_statement, index, value));
        return this;
    }

    public RawStatement Bind(int index, double value)
    {
        Check(raw.sqlite3_bind_double(_statement, index, value));
        return this;
    }

    /// <summary>Binds text, encoded to UTF-8 in a buffer the statement reuses (SQLite copies it).</summary>
    public RawStatement Bind(int index, string? value)
    {
        if (value is null)
        {
            Check(raw.sqlite3_bind_null(_statement, index));
            return this;
        }

        var length = System.Text.Encoding.UTF8.GetMaxByteCount(value.Length);
        if (_text.Length < length)
        {
            _text = new byte[Math.Max(length, _text.Length * 2)];
        }

        var written = System.Text.Encoding.UTF8.GetBytes(value, _text);
        Check(raw.sqlite3_bind_text(_statement, index, _text.AsSpan(0, written)));
        return this;
    }

    private byte[] _text = new byte[256];

    /// <summary>Binds UTF-8 bytes as TEXT (no UTF-16 round trip).</summary>
    public RawStatement BindUtf8Text(int index, ReadOnlySpan<byte> utf8)
    {
        Check(raw.sqlite3_bind_text(_statement, index, utf8));
        return this;
    }

    public RawStatement Bind(int index, long? value) => value is { } v ? Bind(index, v) : BindNull(index);

    public RawStatement BindNull(int index)
    {
        Check(raw.sqlite3_bind_null(_statement, index));
        return this;
    }

    /// <summary>Runs the statement to completion and resets it for the next row.</summary>
    /// <summary>Binds a named parameter (<c>@p0</c>...) by its value's type.</summary>
    public RawStatement Bind(string name, object? value)
    {
        var index = raw.sqlite3_bind_parameter_index(_statement, name);
        if (index == 0)
        {
            throw new ArgumentException($"The statement has no parameter {name}.", nameof(name));
        }

        return value switch
        {
            null => BindNull(index),
            long l => Bind(index, l),
            int i => Bind(index, (long)i),
            double d => Bind(index, d),
            string text => Bind(index, text),
            _ => throw new ArgumentException($"Cannot bind a {value.GetType().Name} to {name}.", nameof(value)),
        };
    }

    /// <summary>Steps to the next row: true while there is one.</summary>
    public bool Step()
    {
        var rc = raw.sqlite3_step(_statement);
        return rc switch
        {
            raw.SQLITE_ROW => true,
            raw.SQLITE_DONE => false,
            _ => throw new SqliteException(raw.sqlite3_errmsg(_db).utf8_to_string(), rc),
        };
    }

    public long ColumnInt64(int column) => raw.sqlite3_column_int64(_statement, column);

    public int ColumnBytes(int column) => raw.sqlite3_column_bytes(_statement, column);

    /// <summary>The column's bytes (for TEXT, its UTF-8 encoding), valid until the next step.</summary>
    public ReadOnlySpan<byte> ColumnBlob(int column) => raw.sqlite3_column_blob(_statement, column);

    public void Execute()
    {
        var rc = raw.sqlite3_step(_statement);
        raw.sqlite3_reset(_statement);
        if (rc != raw.SQLITE_DONE)
        {
            throw new SqliteException(raw.sqlite3_errmsg(_db).utf8_to_string(), rc);
        }
    }

    /// <summary>Runs a query expected to return at most one row; returns false when it returns none.</summary>
    public bool ReadSingle(out long c0, out long c1, out long c2)
    {
        var rc = raw.sqlite3_step(_statement);
        try
        {
            if (rc == raw.SQLITE_ROW)
            {
                c0 = raw.sqlite3_column_int64(_statement, 0);
                c1 = raw.sqlite3_column_int64(_statement, 1);
                c2 = raw.sqlite3_column_int64(_statement, 2);
                return true;
            }

            if (rc != raw.SQLITE_DONE)
            {
                throw new SqliteException(raw.sqlite3_errmsg(_db).utf8_to_string(), rc);
            }

            c0 = c1 = c2 = 0;
            return false;
        }
        finally
        {
            raw.sqlite3_reset(_statement);
        }
    }

    private void Check(int rc)
    {
        if (rc != raw.SQLITE_OK)
        {
            throw new SqliteException(raw.sqlite3_errmsg(_db).utf8_to_string(), rc);
        }
    }

    public void Dispose() => _statement.Dispose();
}
