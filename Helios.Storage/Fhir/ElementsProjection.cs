using System.Buffers;
using System.Collections.Frozen;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Helios.Storage.Fhir;

/// <summary>
/// <c>_elements</c> on stored JSON: keeps a resource's listed root elements, its mandatory ones (minimum cardinality
/// above 0), <c>id</c> and <c>meta</c>, drops the rest, and marks the result with the <c>SUBSETTED</c> tag. Choice
/// elements are named without their type (<c>value</c> keeps <c>valueQuantity</c>) and a primitive's extension
/// (<c>_birthDate</c>) goes with its element.
/// </summary>
public sealed class ElementsProjection
{
    public const string SubsettedSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";
    public const string SubsettedCode = "SUBSETTED";

    /// <summary>Strings are written as they came (no escaping of '+', '&lt;' or non-ASCII letters beyond what JSON needs).</summary>
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true };

    private readonly FhirJsonType _type;
    private readonly FrozenSet<string> _keep;

    private ElementsProjection(FhirJsonType type, IEnumerable<string> elements)
    {
        _type = type;
        _keep = elements.Concat(type.MandatoryElements).Append("id").Append("meta").ToFrozenSet(StringComparer.Ordinal);
    }

    /// <summary>Whether <paramref name="element"/> is a root element of the resource type (a choice by its base name).</summary>
    public static bool IsRootElement(string resourceType, string element) =>
        FhirJsonType.ForName(resourceType) is { IsResource: true } type && type.Element(element) is not null;

    /// <summary>The projection of a resource type keeping <paramref name="elements"/> (those the type has), or null
    /// when the type is unknown.</summary>
    public static ElementsProjection? For(string resourceType, IEnumerable<string> elements) =>
        FhirJsonType.ForName(resourceType) is { IsResource: true } type ? new ElementsProjection(type, elements) : null;

    private bool Keeps(string jsonName)
    {
        var name = jsonName.StartsWith('_') ? jsonName[1..] : jsonName;
        var element = _type.Element(name) ?? _type.ChoiceElement(name)?.Element;
        return element is not null && _keep.Contains(element.Name);
    }

    /// <summary>Writes the projection of one resource's JSON (UTF-8) to <paramref name="output"/>.</summary>
    /// <exception cref="JsonException">The input is not a JSON object.</exception>
    public void Write(ReadOnlySpan<byte> json, IBufferWriter<byte> output)
    {
        var reader = new Utf8JsonReader(json);
        using var document = JsonDocument.ParseValue(ref reader);
        Write(document.RootElement, output);
    }

    /// <inheritdoc cref="Write(ReadOnlySpan{byte}, IBufferWriter{byte})"/>
    public void Write(JsonElement root, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new JsonException("A stored resource is not a JSON object.");
        }

        using var writer = new Utf8JsonWriter(output, WriterOptions);
        writer.WriteStartObject();
        var metaWritten = false;
        foreach (var property in root.EnumerateObject())
        {
            if (property.NameEquals("resourceType"))
            {
                property.WriteTo(writer);
            }
            else if (property.NameEquals("meta"))
            {
                WriteMeta(writer, property.Value);
                metaWritten = true;
            }
            else if (Keeps(property.Name))
            {
                property.WriteTo(writer);
            }
        }

        if (!metaWritten)
        {
            WriteMeta(writer, default);
        }

        writer.WriteEndObject();
    }

    /// <summary>The resource's meta with the SUBSETTED tag added (once).</summary>
    private static void WriteMeta(Utf8JsonWriter writer, JsonElement meta)
    {
        writer.WriteStartObject("meta");
        var tagged = false;
        if (meta.ValueKind == JsonValueKind.Object)
        {
            foreach (var property in meta.EnumerateObject())
            {
                if (!property.NameEquals("tag"))
                {
                    property.WriteTo(writer);
                }
            }

            if (meta.TryGetProperty("tag", out var tags) && tags.ValueKind == JsonValueKind.Array)
            {
                writer.WriteStartArray("tag");
                foreach (var tag in tags.EnumerateArray())
                {
                    tag.WriteTo(writer);
                    tagged |= tag.ValueKind == JsonValueKind.Object &&
                        tag.TryGetProperty("system", out var system) && system.ValueEquals(SubsettedSystem) &&
                        tag.TryGetProperty("code", out var code) && code.ValueEquals(SubsettedCode);
                }

                if (!tagged)
                {
                    WriteSubsettedTag(writer);
                }

                writer.WriteEndArray();
                writer.WriteEndObject();
                return;
            }
        }

        writer.WriteStartArray("tag");
        WriteSubsettedTag(writer);
        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    private static void WriteSubsettedTag(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("system", SubsettedSystem);
        writer.WriteString("code", SubsettedCode);
        writer.WriteString("display", "Subsetted");
        writer.WriteEndObject();
    }
}
