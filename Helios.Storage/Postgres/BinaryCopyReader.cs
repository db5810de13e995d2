using System.Buffers.Binary;
using Helios.Storage.Sql;

namespace Helios.Storage.Postgres;

/// <summary>Reads PostgreSQL's binary COPY format (signature, flags, header extension; then per row an int16 field
/// count, per field an int32 length and the bytes; an int16 of -1 ends the data) from a raw copy stream.</summary>
internal sealed class BinaryCopyReader(Stream stream)
{
    private readonly byte[] _buffer = new byte[1 << 16];
    private int _start;
    private int _end;

    public async ValueTask ReadHeaderAsync(CancellationToken cancellationToken)
    {
        await EnsureAsync(19, cancellationToken);
        // The signature's \xff is one byte: compare the 11 bytes explicitly.
        ReadOnlySpan<byte> expected = [(byte)'P', (byte)'G', (byte)'C', (byte)'O', (byte)'P', (byte)'Y', (byte)'\n', 0xFF, (byte)'\r', (byte)'\n', 0];
        if (!_buffer.AsSpan(_start, 11).SequenceEqual(expected))
        {
            throw new InvalidDataException("The COPY stream does not start with the binary COPY signature.");
        }

        _start += 15; // signature + flags
        var extension = ReadInt32();
        await SkipAsync(extension, cancellationToken);
    }

    /// <summary>Moves to the next row; false at the trailer.</summary>
    public async ValueTask<bool> NextRowAsync(CancellationToken cancellationToken)
    {
        await EnsureAsync(2, cancellationToken);
        var fields = BinaryPrimitives.ReadInt16BigEndian(_buffer.AsSpan(_start, 2));
        _start += 2;
        return fields >= 0;
    }

    public async ValueTask<int> ReadFieldLengthAsync(CancellationToken cancellationToken)
    {
        await EnsureAsync(4, cancellationToken);
        var length = ReadInt32();
        if (length < 0)
        {
            throw new InvalidDataException("Unexpected NULL in a COPY field.");
        }

        return length;
    }

    public async ValueTask<long> ReadInt64FieldAsync(CancellationToken cancellationToken)
    {
        var length = await ReadFieldLengthAsync(cancellationToken);
        if (length != 8)
        {
            throw new InvalidDataException($"Expected an 8-byte bigint field, got {length} bytes.");
        }

        await EnsureAsync(8, cancellationToken);
        var value = BinaryPrimitives.ReadInt64BigEndian(_buffer.AsSpan(_start, 8));
        _start += 8;
        return value;
    }

    /// <summary>Copies a field's bytes into the NDJSON buffer as one line (room must be ensured).</summary>
    public async ValueTask ReadFieldIntoAsync(NdjsonBuffer target, int length, CancellationToken cancellationToken)
    {
        var remaining = length;
        while (remaining > 0)
        {
            if (_start == _end)
            {
                await FillAsync(cancellationToken);
            }

            var take = Math.Min(remaining, _end - _start);
            target.Write(_buffer.AsSpan(_start, take));
            _start += take;
            remaining -= take;
        }

        target.EndLine();
    }

    public async ValueTask SkipFieldAsync(CancellationToken cancellationToken)
    {
        await EnsureAsync(4, cancellationToken);
        var length = ReadInt32();
        if (length > 0)
        {
            await SkipAsync(length, cancellationToken);
        }
    }

    private int ReadInt32()
    {
        var value = BinaryPrimitives.ReadInt32BigEndian(_buffer.AsSpan(_start, 4));
        _start += 4;
        return value;
    }

    private async ValueTask SkipAsync(int count, CancellationToken cancellationToken)
    {
        while (count > 0)
        {
            if (_start == _end)
            {
                await FillAsync(cancellationToken);
            }

            var take = Math.Min(count, _end - _start);
            _start += take;
            count -= take;
        }
    }

    private async ValueTask EnsureAsync(int count, CancellationToken cancellationToken)
    {
        while (_end - _start < count)
        {
            await FillAsync(cancellationToken);
        }
    }

    private async ValueTask FillAsync(CancellationToken cancellationToken)
    {
        if (_start > 0)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }

        var read = await stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken);
        if (read == 0)
        {
            throw new EndOfStreamException("The COPY stream ended before its trailer.");
        }

        _end += read;
    }
}
