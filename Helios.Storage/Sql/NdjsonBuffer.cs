using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Helios.Storage.Snapshots;

namespace Helios.Storage.Sql;

/// <summary>Collects NDJSON lines in a 1 MiB buffer and hands them to the sink in large writes. Each line is checked
/// to be one JSON value as it is ended (a reader pass, no parse into objects): a stored text that is not is taken back
/// out and described in <see cref="Problems"/>, so a part never holds a line a client cannot read.</summary>
public sealed partial class NdjsonBuffer(ISnapshotSink sink)
{
    private static readonly JsonReaderOptions CheckOptions = new() { MaxDepth = 1024 };
    private int _lineStart;
    private List<string>? _problems;

    /// <summary>Lines taken back out because they were not JSON.</summary>
    public int Rejected { get; private set; }

    /// <summary>What was wrong with each rejected line (its type and id when they can be read).</summary>
    public IReadOnlyList<string> Problems => _problems ?? (IReadOnlyList<string>)[];

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

        if (_filled + length + 1 > _buffer.Length)
        {
            await FlushAsync(cancellationToken);
            if (length + 1 > _buffer.Length)
            {
                _buffer = new byte[length + 1];
            }
        }

        _lineStart = _filled;
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
        var line = _buffer.AsSpan(_lineStart, _filled - _lineStart);
        if (!IsJson(line))
        {
            (_problems ??= []).Add(Describe(line));
            Total -= line.Length;
            _filled = _lineStart;
            Rejected++;
            return;
        }

        _buffer[_filled++] = (byte)'\n';
        Total++;
        _lineStart = _filled;
    }

    private static bool IsJson(ReadOnlySpan<byte> line)
    {
        try
        {
            // One object and nothing after it (the reader throws on anything but whitespace after the root value).
            var reader = new Utf8JsonReader(line, CheckOptions);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            while (reader.Read())
            {
            }

            return reader.CurrentDepth == 0 && reader.TokenType == JsonTokenType.EndObject;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    [GeneratedRegex("\"resourceType\"\\s*:\\s*\"([A-Za-z]{1,64})\"")]
    private static partial Regex TypePattern();

    [GeneratedRegex("\"id\"\\s*:\\s*\"([A-Za-z0-9.-]{1,64})\"")]
    private static partial Regex IdPattern();

    private static string Describe(ReadOnlySpan<byte> line)
    {
        var head = Encoding.UTF8.GetString(line[..Math.Min(line.Length, 1024)]);
        var type = TypePattern().Match(head) is { Success: true } t ? t.Groups[1].Value : "A resource";
        var id = IdPattern().Match(head) is { Success: true } i ? "/" + i.Groups[1].Value : " (id unreadable)";
        return $"{type}{id} is stored as text that is not valid JSON ({line.Length} bytes), so it was left out of this export; the stored resource needs repair.";
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
