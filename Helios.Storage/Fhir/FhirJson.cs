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
    // One deserializer per thread: shared instances contend when the bulk path parses on every core (measured +25%).
    [ThreadStatic]
    private static BaseFhirJsonDeserializer? s_strict;

    [ThreadStatic]
    private static BaseFhirJsonDeserializer? s_structural;

    /// <summary>Serializer options for writing resources (compact).</summary>
    public static JsonSerializerOptions SerializerOptions { get; } = new JsonSerializerOptions().ForFhir(ModelInfo.ModelInspector);

    /// <summary>Parses a resource, throwing <see cref="FhirParseException"/> with every issue found. The non-strict
    /// (bulk) mode skips the SDK's cardinality and pattern validation but still refuses unknown elements, values of
    /// the wrong type and malformed dates; a refused resource is re-parsed strictly to report precise issues.</summary>
    public static Resource ParseResource(ReadOnlySpan<byte> utf8, bool strict = true)
    {
        var resource = Parse(utf8, strict);
        if (!strict && !IsStructurallySound(resource))
        {
            Parse(utf8, strict: true);
            throw new FhirParseException(["The resource has unknown elements, values of the wrong type or malformed dates."]);
        }

        return resource;
    }

    /// <summary>No overflow (unknown element or mistyped value) anywhere, and every date-like primitive well formed.</summary>
    private static bool IsStructurallySound(Base node)
    {
        if (node.HasOverflow)
        {
            return false;
        }

        switch (node)
        {
            case FhirDateTime { Value: { } dt } when !FhirDateTime.IsValidValue(dt):
            case Date { Value: { } d } when !Date.IsValidValue(d):
            case Time { Value: { } t } when !Time.IsValidValue(t):
            case FhirBoolean { JsonValue: not (null or bool) }:
            case Integer { JsonValue: not (null or int) }:
            case FhirDecimal { JsonValue: not (null or decimal) }:
                return false;
            case PrimitiveType:
                return true;
        }

        foreach (var (_, value) in node.EnumerateElements())
        {
            if (value is Base child)
            {
                if (!IsStructurallySound(child))
                {
                    return false;
                }
            }
            else if (value is System.Collections.IList list)
            {
                foreach (var item in list)
                {
                    if (item is Base b && !IsStructurallySound(b))
                    {
                        return false;
                    }
                }
            }
        }

        return true;
    }

    private static Resource Parse(ReadOnlySpan<byte> utf8, bool strict)
    {
        if (strict)
        {
            // Outside input (REST bodies). The bulk path has its own structural check (JsonResource).
            RequireObject(utf8);
        }

        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
        var deserializer = strict
            ? s_strict ??= new BaseFhirJsonDeserializer(ModelInfo.ModelInspector, new DeserializerSettings())
            : s_structural ??= new BaseFhirJsonDeserializer(ModelInfo.ModelInspector, new DeserializerSettings { Validator = null });
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
        catch (CodedException ex)
        {
            // A validation issue thrown rather than collected (e.g. a contained resource of the wrong shape).
            throw new FhirParseException([ex.Message]);
        }
        catch (InvalidOperationException ex)
        {
            // The SDK's deserializer reports some malformed shapes (a value where an object belongs) this way.
            throw new FhirParseException([ex.Message]);
        }

        var issueList = issues.ToList();
        if (!ok || resource is null || issueList.Count > 0)
        {
            var messages = issueList.Select(i => i.Message).ToList();
            if (messages.Count == 0)
            {
                messages.Add("The body is not a FHIR R4 resource.");
            }

            throw new FhirParseException(messages);
        }

        return resource;
    }

    /// <summary>A resource is a JSON object: anything else (an array, a string, a number, null, nothing) is refused
    /// before the SDK sees it, with a message that says what was sent. A property name that repeats within one object
    /// is refused too (the SDK would silently keep one of them, e.g. a second <c>resourceType</c>).</summary>
    private static void RequireObject(ReadOnlySpan<byte> utf8)
    {
        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
        var names = new Stack<HashSet<string>?>();
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                var kind = reader.TokenType switch
                {
                    JsonTokenType.StartArray => "an array",
                    JsonTokenType.String => "a string",
                    JsonTokenType.Number => "a number",
                    JsonTokenType.True or JsonTokenType.False => "a boolean",
                    JsonTokenType.Null => "null",
                    _ => "no JSON value",
                };
                throw new FhirParseException([$"A FHIR resource is a JSON object with a resourceType, but the body is {kind}."]);
            }

            names.Push(null);
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject:
                        names.Push(null);
                        break;
                    case JsonTokenType.EndObject:
                        names.Pop();
                        break;
                    case JsonTokenType.PropertyName:
                        var seen = names.Pop() ?? new HashSet<string>(StringComparer.Ordinal);
                        var name = reader.GetString()!;
                        if (!seen.Add(name))
                        {
                            throw new FhirParseException([$"The property '{name}' appears twice in one JSON object (line {1 + CountLines(utf8[..(int)reader.TokenStartIndex])}); send each element once."]);
                        }

                        names.Push(seen);
                        break;
                }
            }
        }
        catch (JsonException ex)
        {
            throw new FhirParseException([$"Invalid JSON: {ex.Message}"]);
        }
    }

    private static int CountLines(ReadOnlySpan<byte> utf8) => utf8.Count((byte)'\n');

    public static string Serialize(Resource resource) => JsonSerializer.Serialize(resource, SerializerOptions);

    public static byte[] SerializeToUtf8(Resource resource) => JsonSerializer.SerializeToUtf8Bytes(resource, SerializerOptions);
}
