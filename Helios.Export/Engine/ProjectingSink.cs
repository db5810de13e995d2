using System.Buffers;
using Helios.Storage.Fhir;
using Helios.Storage.Snapshots;

namespace Helios.Export.Engine;

/// <summary>Applies <c>_elements</c> between the snapshot copy and a part: each NDJSON line (writes always end on a
/// line boundary) is replaced by its projection.</summary>
internal sealed class ProjectingSink(ISnapshotSink inner, ElementsProjection projection) : ISnapshotSink
{
    private readonly ArrayBufferWriter<byte> _output = new(1 << 20);

    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        _output.ResetWrittenCount();
        var rest = data;
        while (!rest.IsEmpty)
        {
            var end = rest.Span.IndexOf((byte)'\n');
            var line = end < 0 ? rest : rest[..end];
            rest = end < 0 ? ReadOnlyMemory<byte>.Empty : rest[(end + 1)..];
            if (line.IsEmpty)
            {
                continue;
            }

            projection.Write(line.Span, _output);
            _output.Write("\n"u8);
        }

        await inner.WriteAsync(_output.WrittenMemory, cancellationToken);
    }
}
