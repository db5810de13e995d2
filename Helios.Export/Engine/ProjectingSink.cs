using System.Buffers;
using System.Text.Json;
using Helios.Export.Requests;
using Helios.Storage.Fhir;
using Helios.Storage.Snapshots;

namespace Helios.Export.Engine;

/// <summary>Applies <c>_elements</c> between the snapshot copy and a part: each NDJSON line (writes always end on a
/// line boundary) is replaced by its projection for its own resource type; a type none of the elements applies to
/// (and a patient block's header) passes unchanged.</summary>
internal sealed class ProjectingSink(ISnapshotSink inner, ExportRequest request) : ISnapshotSink
{
    private readonly ArrayBufferWriter<byte> _output = new(1 << 20);
    private readonly Dictionary<string, ElementsProjection?> _projections = new(StringComparer.Ordinal);

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

            using var document = JsonDocument.Parse(line);
            if (ProjectionOf(document.RootElement) is { } projection)
            {
                projection.Write(document.RootElement, _output);
            }
            else
            {
                _output.Write(line.Span);
            }

            _output.Write("\n"u8);
        }

        await inner.WriteAsync(_output.WrittenMemory, cancellationToken);
    }

    private ElementsProjection? ProjectionOf(JsonElement resource)
    {
        if (resource.ValueKind != JsonValueKind.Object || !resource.TryGetProperty("resourceType", out var typeElement) ||
            typeElement.GetString() is not { } type || type == "Parameters")
        {
            return null;
        }

        if (!_projections.TryGetValue(type, out var projection))
        {
            projection = request.ElementsFor(type) is { } elements ? ElementsProjection.For(type, elements) : null;
            _projections[type] = projection;
        }

        return projection;
    }
}
