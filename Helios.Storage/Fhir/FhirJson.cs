using System.Text.Json;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using Hl7.Fhir.Utility;

namespace Helios.Storage.Fhir;

/// <summary>
/// Parsing and serialization of FHIR R4 JSON with the Firely SDK. Strict parsing (with the SDK's POCO validator)
/// is used for single-resource REST writes; the bulk path skips the validator's cardinality and pattern checks but
/// still rejects unknown elements, wrong JSON kinds and invalid JSON.
/// </summary>
public static class FhirJson
{
    private static readonly BaseFhirJsonDeserializer s_strict = new(ModelInfo.ModelInspector, new DeserializerSettings());
    private static readonly BaseFhirJsonDeserializer s_structural = new(ModelInfo.ModelInspector, new DeserializerSettings { Validator = null });

    /// <summary>Serializer options for writing resources (compact).</summary>
    public static JsonSerializerOptions SerializerOptions { get; } = new JsonSerializerOptions().ForFhir(ModelInfo.ModelInspector);

    /// <summary>Serializer options for pretty output.</summary>
    public static JsonSerializerOptions PrettyOptions { get; } = new JsonSerializerOptions { WriteIndented = true }.ForFhir(ModelInfo.ModelInspector);

    /// <summary>Parses a resource, throwing <see cref="FhirParseException"/> with every issue found.</summary>
    public static Resource ParseResource(ReadOnlySpan<byte> utf8, bool strict = true)
    {
        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
        var deserializer = strict ? s_strict : s_structural;
        bool ok;
        Resource? resource;
        IEnumerable<CodedException> issues;
        try
        {
            ok = deserializer.TryDeserializeResource(ref reader, out resource, out issues);
        }
        catch (JsonException ex)
        {
            throw new FhirParseException([$"Invalid JSON: {ex.Message}"]);
        }
        catch (DeserializationFailedException ex)
        {
            throw new FhirParseException(ex.Exceptions.Select(e => e.Message).ToList());
        }

        if (!ok || resource is null)
        {
            var messages = issues.Select(i => i.Message).ToList();
            if (messages.Count == 0)
            {
                messages.Add("The body is not a FHIR R4 resource.");
            }

            throw new FhirParseException(messages);
        }

        return resource;
    }

    public static byte[] SerializeToUtf8(Resource resource) => JsonSerializer.SerializeToUtf8Bytes(resource, SerializerOptions);

    public static string Serialize(Resource resource) => JsonSerializer.Serialize(resource, SerializerOptions);
}
