using System.Collections.Concurrent;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using Helios.Storage.Fhir;
using Hl7.Fhir.Model;
using Hl7.Fhir.Utility;

namespace Helios.Storage.Indexing;

/// <summary>
/// <see cref="IndexExtractor"/> on a <see cref="JsonResource"/>: the same compiled search parameter programs walk
/// the JSON, and each value becomes the same index rows the POCO extractor makes (an equivalence test holds the
/// two together). The few expressions outside the compiled subset (for example <c>Patient.deceased</c>) are
/// evaluated by the SDK on a POCO parsed only for the resource types that have them.
/// </summary>
public sealed class JsonIndexExtractor(SearchParameterRegistry registry)
{
    public IndexEntries Extract(JsonResource resource)
    {
        ArgumentNullException.ThrowIfNull(resource);
        var entries = new IndexEntries();
        var root = new JsonNode(resource.Root, FhirJsonType.ForName(resource.Type)!);
        var values = new List<JsonNode>();
        Resource? poco = null;
        foreach (var parameter in registry.ForType(resource.Type))
        {
            if (!parameter.IsStored)
            {
                continue;
            }

            if (parameter.Paths is { } paths)
            {
                values.Clear();
                foreach (var path in paths)
                {
                    path.Select(root, values);
                }

                foreach (var value in values)
                {
                    Add(entries, parameter, value);
                }
            }
            else
            {
                poco ??= ParsePoco(resource);
                IndexExtractor.AddParameter(entries, parameter, poco);
            }
        }

        IndexExtractor.AddCompartments(entries, registry, resource.Type, resource.Id);
        return entries;
    }

    private static Resource ParsePoco(JsonResource resource)
    {
        var poco = FhirJson.ParseResource(resource.Utf8.Span, strict: false);
        poco.Id = resource.Id;
        return poco;
    }

    private static void Add(IndexEntries entries, SearchParameterInfo parameter, JsonNode value)
    {
        var name = parameter.Name;
        switch (parameter.Kind)
        {
            case IndexKind.Token:
                AddToken(entries, name, value);
                break;
            case IndexKind.String:
                AddString(entries, name, value);
                break;
            case IndexKind.Reference:
                AddReference(entries, name, value);
                break;
            case IndexKind.Date:
                AddDate(entries, name, value);
                break;
            case IndexKind.Number:
                if (value.Type.IsPrimitive && Decimal(value.Value) is { } number)
                {
                    entries.Numbers.Add(new NumberEntry(name, number));
                }

                break;
            case IndexKind.Quantity:
                if (value.Type.IsQuantity)
                {
                    if (Decimal(value.Value, "value") is { } qv)
                    {
                        var code = value.Property("code");
                        var unit = value.Property("unit");
                        entries.Quantities.Add(new QuantityEntry(name, value.Property("system"), code ?? unit, qv));
                        if (unit is { Length: > 0 } && unit != code)
                        {
                            entries.Quantities.Add(new QuantityEntry(name, null, unit, qv));
                        }
                    }
                }
                else if (value.Type.Name == "Money" && Decimal(value.Value, "value") is { } mv)
                {
                    entries.Quantities.Add(new QuantityEntry(name, "urn:iso:std:iso:4217", value.Property("currency"), mv));
                }

                break;
            case IndexKind.Uri:
                if (value.Type.IsPrimitive && value.Text is { } uri)
                {
                    entries.Uris.Add(new UriEntry(name, uri));
                }

                break;
        }
    }

    private static decimal? Decimal(JsonElement node, string property) =>
        node.ValueKind == JsonValueKind.Object && node.TryGetProperty(property, out var v) ? Decimal(v) : null;

    private static decimal? Decimal(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Number when value.TryGetDecimal(out var d) => d,
        JsonValueKind.String when decimal.TryParse(value.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
        _ => null,
    };

    private static void AddToken(IndexEntries entries, string name, JsonNode value)
    {
        switch (value.Type.Name)
        {
            case "CodeableConcept":
                foreach (var coding in value.Items("coding"))
                {
                    AddCoding(entries, name, new JsonNode(coding, value.Type));
                }

                break;
            case "Coding":
                AddCoding(entries, name, value);
                break;
            case "Identifier":
                var system = value.Property("system");
                var identifierValue = value.Property("value");
                if (identifierValue is not null || system is not null)
                {
                    entries.Tokens.Add(new TokenEntry(name, system, identifierValue));
                }

                break;
            case "ContactPoint":
                if (value.Property("value") is { } contact)
                {
                    entries.Tokens.Add(new TokenEntry(name, value.Property("system"), contact));
                }

                break;
            default:
                if (value.Type.IsPrimitive && value.Text is { } text)
                {
                    entries.Tokens.Add(new TokenEntry(name, ImpliedSystem(value.Type, text), text));
                }

                break;
        }
    }

    private static void AddCoding(IndexEntries entries, string name, JsonNode coding)
    {
        var system = coding.Property("system");
        var code = coding.Property("code");
        if (code is not null || system is not null)
        {
            entries.Tokens.Add(new TokenEntry(name, system, code));
        }
    }

    private static readonly ConcurrentDictionary<Type, Dictionary<string, string?>> s_enumSystems = new();

    /// <summary>The code system a bound code's literal implies (as <c>Code&lt;T&gt;.Value.GetSystem()</c>).</summary>
    private static string? ImpliedSystem(FhirJsonType type, string literal)
    {
        if (type.EnumType is not { } enumType)
        {
            return null;
        }

        var systems = s_enumSystems.GetOrAdd(enumType, static t =>
        {
            var map = new Dictionary<string, string?>(StringComparer.Ordinal);
            foreach (var field in t.GetFields(BindingFlags.Public | BindingFlags.Static))
            {
                var value = (Enum)field.GetValue(null)!;
                map[value.GetLiteral()] = value.GetSystem();
            }

            return map;
        });
        return systems.TryGetValue(literal, out var system) ? system : null;
    }

    private static void AddString(IndexEntries entries, string name, JsonNode value)
    {
        switch (value.Type.Name)
        {
            case "HumanName":
                Add(entries, name, value.Property("family"));
                foreach (var part in new[] { "given", "prefix", "suffix" })
                {
                    foreach (var item in value.Items(part))
                    {
                        Add(entries, name, JsonNode.PrimitiveText(item));
                    }
                }

                Add(entries, name, value.Property("text"));
                break;
            case "Address":
                foreach (var line in value.Items("line"))
                {
                    Add(entries, name, JsonNode.PrimitiveText(line));
                }

                foreach (var part in new[] { "city", "district", "state", "postalCode", "country", "text" })
                {
                    Add(entries, name, value.Property(part));
                }

                break;
            default:
                if (value.Type.IsPrimitive)
                {
                    Add(entries, name, value.Text);
                }

                break;
        }

        static void Add(IndexEntries entries, string name, string? text) => IndexExtractor.AddStringValue(entries, name, text);
    }

    private static void AddReference(IndexEntries entries, string name, JsonNode value)
    {
        if (value.Type.Name == "Reference")
        {
            if (value.Property("reference") is { Length: > 0 } text && text[0] != '#')
            {
                entries.References.Add(IndexExtractor.TryParseReference(text, out var type, out var id)
                    ? new ReferenceEntry(name, type, id)
                    : new ReferenceEntry(name, null, text));
            }
        }
        else if (value.Type.IsPrimitive && value.Text is { } url)
        {
            entries.References.Add(new ReferenceEntry(name, null, url));
        }
    }

    private static void AddDate(IndexEntries entries, string name, JsonNode value)
    {
        switch (value.Type.Name)
        {
            case "Period":
                long low = FhirDateRange.MinValue, high = FhirDateRange.MaxValue;
                var any = false;
                if (FhirDateRange.TryParse(value.Property("start"), out var sLow, out _))
                {
                    low = sLow;
                    any = true;
                }

                if (FhirDateRange.TryParse(value.Property("end"), out _, out var eHigh))
                {
                    high = eHigh;
                    any = true;
                }

                if (any)
                {
                    entries.Dates.Add(new DateEntry(name, low, high));
                }

                break;
            case "Timing":
                foreach (var e in value.Items("event"))
                {
                    if (FhirDateRange.TryParse(JsonNode.PrimitiveText(e), out var tl, out var th))
                    {
                        entries.Dates.Add(new DateEntry(name, tl, th));
                    }
                }

                break;
            case "instant":
                if (value.Text is { } instant && Hl7.Fhir.Serialization.PrimitiveTypeConverter.ConvertTo<DateTimeOffset>(instant) is var iv)
                {
                    var micros = FhirDateRange.ToMicros(iv);
                    entries.Dates.Add(new DateEntry(name, micros, micros));
                }

                break;
            default:
                if (value.Type.IsPrimitive && FhirDateRange.TryParse(value.Text, out var l, out var h))
                {
                    entries.Dates.Add(new DateEntry(name, l, h));
                }

                break;
        }
    }
}
