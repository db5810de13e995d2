using System.Text.Json;

namespace Helios.Export.Engine;

/// <summary>The NDJSON of a manifest's error files: one OperationOutcome per problem.</summary>
internal static class ExportOutcomes
{
    public static ReadOnlyMemory<byte> Lines(IEnumerable<string> messages, string severity, string code)
    {
        var buffer = new MemoryStream();
        foreach (var message in messages)
        {
            using (var writer = new Utf8JsonWriter(buffer))
            {
                writer.WriteStartObject();
                writer.WriteString("resourceType", "OperationOutcome");
                writer.WriteStartArray("issue");
                writer.WriteStartObject();
                writer.WriteString("severity", severity);
                writer.WriteString("code", code);
                writer.WriteString("diagnostics", message);
                writer.WriteEndObject();
                writer.WriteEndArray();
                writer.WriteEndObject();
            }

            buffer.WriteByte((byte)'\n');
        }

        return buffer.GetBuffer().AsMemory(0, (int)buffer.Length);
    }
}
