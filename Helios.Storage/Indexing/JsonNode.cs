using System.Text.Json;
using Helios.Storage.Fhir;

namespace Helios.Storage.Indexing;

/// <summary>A value in a resource's JSON with the FHIR type the model gives it.</summary>
internal readonly record struct JsonNode(JsonElement Value, FhirJsonType Type)
{
    /// <summary>A primitive's text as the SDK's <c>PrimitiveType.ToString()</c> gives it; null for no value.</summary>
    public static string? PrimitiveText(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString(),
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        JsonValueKind.Number => value.GetRawText(),
        _ => null,
    };

    public string? Text => PrimitiveText(Value);

    /// <summary>The text of a primitive property of this (complex) node.</summary>
    public string? Property(string name) =>
        Value.ValueKind == JsonValueKind.Object && Value.TryGetProperty(name, out var v) ? PrimitiveText(v) : null;

    public IEnumerable<JsonElement> Items(string name)
    {
        if (Value.ValueKind != JsonValueKind.Object || !Value.TryGetProperty(name, out var v))
        {
            yield break;
        }

        if (v.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in v.EnumerateArray())
            {
                yield return item;
            }
        }
        else
        {
            yield return v;
        }
    }
}
