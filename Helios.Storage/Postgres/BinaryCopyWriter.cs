using System.Buffers.Binary;
using System.Text;

namespace Helios.Storage.Postgres;

/// <summary>
/// Writes PostgreSQL's binary COPY format into a raw copy stream. Fields are encoded straight into one buffer
/// (strings as UTF-8, no per-field awaits); the caller flushes between rows once <see cref="ShouldFlush"/> says so.
/// </summary>
internal sealed class BinaryCopyWriter(Stream stream)
{
    private const int FlushAt = 1 << 16;
    private byte[] _buffer = new byte[FlushAt * 2];
    private int _filled;

    public bool ShouldFlush => _filled >= FlushAt;

    public void WriteHeader()
    {
        ReadOnlySpan<byte> signature = [(byte)'P', (byte)'G', (byte)'C', (byte)'O', (byte)'P', (byte)'Y', (byte)'\n', 0xFF, (byte)'\r', (byte)'\n', 0];
        Ensure(19);
        signature.CopyTo(_buffer.AsSpan(_filled));
        _filled += 11;
        Int32(0); // flags
        Int32(0); // header extension length
    }

    public void StartRow(short fields)
    {
        Ensure(2);
        BinaryPrimitives.WriteInt16BigEndian(_buffer.AsSpan(_filled), fields);
        _filled += 2;
    }

    public void Write(long value)
    {
        Ensure(12);
        Int32(8);
        BinaryPrimitives.WriteInt64BigEndian(_buffer.AsSpan(_filled), value);
        _filled += 8;
    }

    public void Write(int value)
    {
        Ensure(8);
        Int32(4);
        Int32(value);
    }

    public void Write(double value)
    {
        Ensure(12);
        Int32(8);
        BinaryPrimitives.WriteDoubleBigEndian(_buffer.AsSpan(_filled), value);
        _filled += 8;
    }

    public void Write(long? value)
    {
        if (value is { } v)
        {
            Write(v);
        }
        else
        {
            WriteNull();
        }
    }

    public void WriteNull()
    {
        Ensure(4);
        Int32(-1);
    }

    /// <summary>A text field (null writes SQL NULL).</summary>
    public void Write(string? value)
    {
        if (value is null)
        {
            WriteNull();
            return;
        }

        Ensure(4 + Encoding.UTF8.GetMaxByteCount(value.Length));
        var length = Encoding.UTF8.GetBytes(value, _buffer.AsSpan(_filled + 4));
        BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(_filled), length);
        _filled += 4 + length;
    }

    /// <summary>A text field from UTF-8 bytes (the connection's client encoding is UTF-8).</summary>
    public void WriteUtf8Text(ReadOnlySpan<byte> utf8)
    {
        Ensure(4 + utf8.Length);
        Int32(utf8.Length);
        utf8.CopyTo(_buffer.AsSpan(_filled));
        _filled += utf8.Length;
    }

    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        if (_filled > 0)
        {
            await stream.WriteAsync(_buffer.AsMemory(0, _filled), cancellationToken);
            _filled = 0;
        }
    }

    /// <summary>Writes the trailer and flushes; disposing the copy stream then completes the COPY.</summary>
    public async ValueTask CompleteAsync(CancellationToken cancellationToken)
    {
        Ensure(2);
        BinaryPrimitives.WriteInt16BigEndian(_buffer.AsSpan(_filled), -1);
        _filled += 2;
        await FlushAsync(cancellationToken);
    }

    private void Int32(int value)
    {
        BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(_filled), value);
        _filled += 4;
    }

    /// <summary>Room for <paramref name="bytes"/> more; the buffer grows (a row is never split across flushes).</summary>
    private void Ensure(int bytes)
    {
        if (_filled + bytes > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _filled + bytes));
        }
    }
}
