using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Hl7.Fhir.Model;

namespace Helios.Storage.Fhir;

/// <summary>
/// The bulk path's parse: a resource checked against the SDK's model straight on the JSON (every property must be an
/// element of its type, choice suffixes must name an allowed type, arrays only where the element repeats, values of
/// the right JSON kind, dates well formed, contained resources checked the same way), without building POCOs. The
/// stored text is the input's own JSON with <c>id</c> and <c>meta</c> put first, so the store can splice in the
/// version and timestamp it assigns (<see cref="Head"/> + version + <c>","lastUpdated":"</c> + instant + <see cref="Tail"/>).
/// </summary>
public sealed partial class JsonResource : IDisposable
{
    private const int MaxIssues = 5;

    private JsonResource(ReadOnlyMemory<byte> utf8, JsonDocument document, string type, string id, byte[] head, byte[] tail, ReadOnlyMemory<byte> rest)
    {
        Utf8 = utf8;
        Document = document;
        Type = type;
        Id = id;
        Head = head;
        Tail = tail;
        Rest = rest;
    }

    /// <summary>The input the resource was parsed from.</summary>
    public ReadOnlyMemory<byte> Utf8 { get; }

    public JsonDocument Document { get; }

    public JsonElement Root => Document.RootElement;

    public string Type { get; }

    public string Id { get; }

    /// <summary>UTF-8 text before the version id (ends with <c>"versionId":"</c>).</summary>
    public byte[] Head { get; }

    /// <summary>UTF-8 text after the instant (starts with the instant's closing quote, ends the meta and holds any
    /// elements that came before the input's <c>resourceType</c>, <c>id</c> or <c>meta</c>).</summary>
    public byte[] Tail { get; }

    /// <summary>The rest of the input after its last <c>resourceType</c>, <c>id</c> or <c>meta</c> property, up to
    /// (not including) the closing brace: a slice of <see cref="Utf8"/>, not a copy.</summary>
    public ReadOnlyMemory<byte> Rest { get; }

    /// <summary>Between the version id and the instant.</summary>
    private static ReadOnlySpan<byte> Middle => "\",\"lastUpdated\":\""u8;

    /// <summary>The stored JSON (UTF-8) for a version written at <paramref name="lastUpdated"/>.</summary>
    public byte[] Compose(int version, DateTimeOffset lastUpdated) => Compose(Head, version, lastUpdated, Tail, Rest.Span);

    internal static byte[] Compose(byte[] head, int version, DateTimeOffset lastUpdated, byte[] tail, ReadOnlySpan<byte> rest)
    {
        Span<byte> versionText = stackalloc byte[11];
        version.TryFormat(versionText, out var versionLength, provider: CultureInfo.InvariantCulture);
        var instant = Hl7.Fhir.Serialization.PrimitiveTypeConverter.ConvertTo<string>(lastUpdated);
        var result = new byte[head.Length + versionLength + Middle.Length + instant.Length + tail.Length + rest.Length + 1];
        var at = 0;
        head.CopyTo(result, at);
        at += head.Length;
        versionText[..versionLength].CopyTo(result.AsSpan(at));
        at += versionLength;
        Middle.CopyTo(result.AsSpan(at));
        at += Middle.Length;
        at += Encoding.ASCII.GetBytes(instant, result.AsSpan(at));
        tail.CopyTo(result, at);
        at += tail.Length;
        rest.CopyTo(result.AsSpan(at));
        result[^1] = (byte)'}';
        return result;
    }

    public void Dispose() => Document.Dispose();

    [GeneratedRegex("^[A-Za-z0-9\\-\\.]{1,64}$", RegexOptions.CultureInvariant)]
    private static partial Regex IdPattern();

    /// <summary>Parses and checks one resource; on failure returns null and the issues found (at most a few).</summary>
    public static JsonResource? TryParse(ReadOnlyMemory<byte> utf8, out List<string> issues)
    {
        issues = [];
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(utf8, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 128 });
        }
        catch (JsonException ex)
        {
            issues.Add($"Invalid JSON: {ex.Message}");
            return null;
        }

        try
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("resourceType", out var rt) || rt.ValueKind != JsonValueKind.String)
            {
                issues.Add("The JSON is not a FHIR resource: it has no 'resourceType'.");
                return null;
            }

            var type = rt.GetString()!;
            if (FhirJsonType.ForName(type) is not { IsResource: true } resourceType || !ModelInfo.IsKnownResource(type))
            {
                issues.Add($"Unknown resource type '{type}'.");
                return null;
            }

            new Checker(issues).Resource(root, resourceType, type);
            string id;
            if (root.TryGetProperty("id", out var idElement) && idElement.ValueKind == JsonValueKind.String)
            {
                id = idElement.GetString()!;
                if (!IdPattern().IsMatch(id))
                {
                    issues.Add($"{type}.id: '{id}' is not a valid FHIR id (1 to 64 of A-Z, a-z, 0-9, '-' and '.').");
                }
            }
            else
            {
                id = Guid.NewGuid().ToString();
            }

            if (issues.Count > 0)
            {
                return null;
            }

            var (head, tail, rest) = Template(utf8, root, type, id);
            var result = new JsonResource(utf8, document, type, id, head, tail, rest);
            document = null!;
            return result;
        }
        finally
        {
            document?.Dispose();
        }
    }

    /// <summary>Cuts the input around a new <c>meta</c>: the head names type and id; the tail holds the input's other
    /// meta elements and any element that came before <c>resourceType</c>, <c>id</c> or <c>meta</c>; the rest is the
    /// input after the last of those three, uncopied. Only the properties up to that point are read again (in FHIR
    /// JSON they come first), not the whole document.</summary>
    private static (byte[] Head, byte[] Tail, ReadOnlyMemory<byte> Remainder) Template(ReadOnlyMemory<byte> input, JsonElement root, string type, string id)
    {
        var utf8 = input.Span;
        // How many top-level properties to read: through the last resourceType, id or meta.
        int count = 0, through = 0;
        foreach (var property in root.EnumerateObject())
        {
            count++;
            var name = System.Runtime.InteropServices.JsonMarshal.GetRawUtf8PropertyName(property);
            if (name.SequenceEqual("resourceType"u8) || name.SequenceEqual("id"u8) || name.SequenceEqual("meta"u8) || name.IndexOf((byte)'\\') >= 0)
            {
                through = count;
            }
        }

        // The id is a FHIR id (checked), so it needs no escaping.
        var head = Encoding.UTF8.GetBytes(string.Concat("{\"resourceType\":\"", type, "\",\"id\":\"", id, "\",\"meta\":{\"versionId\":\""));
        var tail = new ArrayBufferWriter<byte>(128);
        tail.Write("\""u8);
        var others = new List<System.Range>();
        var reader = new Utf8JsonReader(utf8);
        reader.Read();
        for (var read = 0; read < through && reader.Read() && reader.TokenType == JsonTokenType.PropertyName; read++)
        {
            var start = (int)reader.TokenStartIndex;
            var skip = reader.ValueTextEquals("resourceType"u8) || reader.ValueTextEquals("id"u8);
            var isMeta = reader.ValueTextEquals("meta"u8);
            reader.Read();
            if (isMeta && reader.TokenType == JsonTokenType.StartObject)
            {
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var metaStart = (int)reader.TokenStartIndex;
                    var assigned = reader.ValueTextEquals("versionId"u8) || reader.ValueTextEquals("lastUpdated"u8)
                        || reader.ValueTextEquals("_versionId"u8) || reader.ValueTextEquals("_lastUpdated"u8);
                    reader.Read();
                    reader.Skip();
                    if (!assigned)
                    {
                        tail.Write(","u8);
                        tail.Write(utf8[metaStart..(int)reader.BytesConsumed]);
                    }
                }

                continue;
            }

            reader.Skip();
            if (!skip && !isMeta)
            {
                others.Add(start..(int)reader.BytesConsumed);
            }
        }

        tail.Write("}"u8);
        foreach (var range in others)
        {
            tail.Write(","u8);
            tail.Write(utf8[range]);
        }

        // The remaining properties, verbatim: from after the last one read (a comma and whitespace lead the next)
        // to the closing brace of the resource.
        var end = utf8.LastIndexOf((byte)'}');
        var restStart = (int)reader.BytesConsumed;
        return (head, tail.WrittenSpan.ToArray(), through == count ? ReadOnlyMemory<byte>.Empty : input[restStart..end]);
    }
}
