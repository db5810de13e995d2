using Helios.Storage.Snapshots;

namespace Helios.Storage.Sql;

/// <summary>Collects NDJSON lines in a 1 MiB buffer and hands them to the sink in large writes.</summary>
public sealed class NdjsonBuffer(ISnapshotSink sink)
{
    private byte[] _buffer = new byte[1 << 20];
    private int _filled;

    /// <summary>Bytes appended so far (flushed or not).</summary>
    public long Total { get; private set; }

    private byte[]? _pendingLine;

    /// <summary>Lines written before the next line, if one comes (a block header that must not stand alone).</summary>
    public long PendingLinesWritten { get; private set; }

    /// <summary>A line to write just before the next appended line, or to drop if none comes (replaces one pending).</summary>
    public void SetPendingLine(byte[]? line) => _pendingLine = line;

    /// <summary>Room for a line of this many bytes (plus its newline), flushing first when needed; a pending line
    /// is written first.</summary>
    public async ValueTask EnsureRoomAsync(int length, CancellationToken cancellationToken)
    {
        if (_pendingLine is { } pending)
        {
            _pendingLine = null;
            await EnsureRoomAsync(pending.Length, cancellationToken);
            Append(pending);
            PendingLinesWritten++;
        }

        if (_filled + length + 1 <= _buffer.Length)
        {
            return;
        }

        await FlushAsync(cancellationToken);
        if (length + 1 > _buffer.Length)
        {
            _buffer = new byte[length + 1];
        }
    }

    /// <summary>Appends one line; <see cref="EnsureRoomAsync"/> must have been awaited for its length.</summary>
    public void Append(ReadOnlySpan<byte> json)
    {
        Write(json);
        EndLine();
    }

    /// <summary>Appends a piece of the current line (room for the whole line must have been ensured).</summary>
    public void Write(ReadOnlySpan<byte> piece)
    {
        piece.CopyTo(_buffer.AsSpan(_filled));
        _filled += piece.Length;
        Total += piece.Length;
    }

    public void EndLine()
    {
        _buffer[_filled++] = (byte)'\n';
        Total++;
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        if (_filled > 0)
        {
            await sink.WriteAsync(_buffer.AsMemory(0, _filled), cancellationToken);
            _filled = 0;
        }
    }
}
