using System.Globalization;
using System.Text;
using System.Text.Json;
using Hl7.Fhir.Model;

namespace Helios.Storage.Fhir;

public sealed partial class JsonResource
{
    /// <summary>The structural walk. Paths in issues read like FHIRPath (<c>Observation.component[1].valueQuantity</c>).</summary>
    private sealed class Checker(List<string> issues)
    {
        // The path to the current node, built into text only when an issue is reported.
        private readonly List<(string Name, int Index)> _path = [];

        private bool Full => issues.Count >= MaxIssues;

        private string At
        {
            get
            {
                var text = new StringBuilder();
                foreach (var (name, index) in _path)
                {
                    if (index >= 0)
                    {
                        text.Append('[').Append(index.ToString(CultureInfo.InvariantCulture)).Append(']');
                    }
                    else
                    {
                        text.Append(text.Length > 0 ? "." : string.Empty).Append(name);
                    }
                }

                return text.ToString();
            }
        }

        private void Issue(string message)
        {
            if (!Full)
            {
                issues.Add(At + ": " + message);
            }
        }

        private void Push(string name, int index = -1) => _path.Add((name, index));

        private void Pop() => _path.RemoveAt(_path.Count - 1);

        public void Resource(JsonElement value, FhirJsonType type, string name)
        {
            Push(name);
            Object(value, type, isResource: true);
            Pop();
        }

        private void Object(JsonElement value, FhirJsonType type, bool isResource)
        {
            // Names of this object's properties sit on a shared stack above any outer object's (nested objects
            // push and pop their own), so duplicates are found without a set per object.
            var first = _names.Count;
            try
            {
                Properties(value, type, isResource, first);
            }
            finally
            {
                _names.RemoveRange(first, _names.Count - first);
            }
        }

        private readonly List<string> _names = [];

        private void Properties(JsonElement value, FhirJsonType type, bool isResource, int first)
        {
            Span<char> buffer = stackalloc char[64];
            foreach (var property in value.EnumerateObject())
            {
                if (Full)
                {
                    return;
                }

                // Names are looked up without allocating: the raw UTF-8 name, widened when it is plain ASCII (any
                // escape or non-ASCII byte takes the string the parser decodes).
                var raw = System.Runtime.InteropServices.JsonMarshal.GetRawUtf8PropertyName(property);
                scoped ReadOnlySpan<char> span;
                string? decoded = null;
                if (raw.Length <= buffer.Length && System.Text.Ascii.IsValid(raw) && raw.IndexOf((byte)'\\') < 0)
                {
                    System.Text.Ascii.ToUtf16(raw, buffer, out var written);
                    span = buffer[..written];
                }
                else
                {
                    decoded = property.Name;
                    span = decoded;
                }

                for (var i = first; i < _names.Count; i++)
                {
                    if (span.SequenceEqual(_names[i]))
                    {
                        var duplicate = decoded ?? span.ToString();
                        Push(duplicate);
                        Issue($"the property '{duplicate}' appears more than once.");
                        Pop();
                        return;
                    }
                }

                if (isResource && span.SequenceEqual("resourceType"))
                {
                    _names.Add("resourceType");
                    continue;
                }

                string name;
                if (span.Length > 1 && span[0] == '_')
                {
                    name = decoded ?? span.ToString();
                    _names.Add(name);
                    Push(name);
                    Companion(property.Value, type, name[1..]);
                }
                else if (type.Element(span) is { } element)
                {
                    name = element.Name;
                    _names.Add(name);
                    Push(name);
                    if (element.IsChoice)
                    {
                        Issue($"the choice element '{name}[x]' needs its type in the name (for example '{name}String').");
                    }
                    else
                    {
                        Values(property.Value, element, element.IsResource ? null : element.Type);
                    }
                }
                else if (type.ChoiceElement(span, out name) is { } choice)
                {
                    _names.Add(name);
                    Push(name);
                    Values(property.Value, choice.Element, choice.Type);
                }
                else
                {
                    _names.Add(name);
                    Push(name);
                    Issue($"'{name}' is not an element of {type.Name}.");
                }

                Pop();
            }
        }

        /// <summary><c>_name</c>: the id and extensions of primitive element <c>name</c>.</summary>
        private void Companion(JsonElement value, FhirJsonType owner, string name)
        {
            var element = owner.Element(name);
            var type = element is { IsChoice: false, IsResource: false } ? element.Type : owner.ChoiceElement(name)?.Type;
            if (type is not { IsPrimitive: true })
            {
                Issue($"'{name}' is not a primitive element of {owner.Name}.");
                return;
            }

            if (value.ValueKind == JsonValueKind.Array && (element?.IsCollection ?? false))
            {
                var i = 0;
                foreach (var item in value.EnumerateArray())
                {
                    Push(name, i++);
                    if (item.ValueKind == JsonValueKind.Object)
                    {
                        Object(item, s_element, isResource: false);
                    }
                    else if (item.ValueKind != JsonValueKind.Null)
                    {
                        Issue("expected an object or null.");
                    }

                    Pop();
                }
            }
            else if (value.ValueKind == JsonValueKind.Object)
            {
                Object(value, s_element, isResource: false);
            }
            else
            {
                Issue($"expected {(element?.IsCollection ?? false ? "an array" : "an object")}.");
            }
        }

        /// <summary>What a primitive's companion holds: <c>id</c> and <c>extension</c>.</summary>
        private static readonly FhirJsonType s_element = FhirJsonType.ForName("Element")!;

        private void Values(JsonElement value, FhirJsonElement element, FhirJsonType? type)
        {
            if (element.IsCollection)
            {
                if (value.ValueKind != JsonValueKind.Array)
                {
                    Issue($"'{element.Name}' repeats, so its value must be an array.");
                    return;
                }

                if (value.GetArrayLength() == 0)
                {
                    Issue("an array must not be empty (leave the element out instead).");
                    return;
                }

                var i = 0;
                foreach (var item in value.EnumerateArray())
                {
                    // null stands for a primitive that only has an id or extensions (in the companion array).
                    if (!(item.ValueKind == JsonValueKind.Null && type is { IsPrimitive: true }))
                    {
                        Push(string.Empty, i);
                        One(item, type);
                        Pop();
                    }

                    i++;
                }
            }
            else if (value.ValueKind == JsonValueKind.Array)
            {
                Issue($"'{element.Name}' does not repeat, so its value must not be an array.");
            }
            else
            {
                One(value, type);
            }
        }

        private void One(JsonElement value, FhirJsonType? type)
        {
            if (type is null)
            {
                // A resource-valued element: the resource names its own type.
                if (value.ValueKind != JsonValueKind.Object || !value.TryGetProperty("resourceType", out var rt) || rt.ValueKind != JsonValueKind.String
                    || FhirJsonType.ForName(rt.GetString()!) is not { IsResource: true } resourceType)
                {
                    Issue("expected a resource with a known 'resourceType'.");
                    return;
                }

                Object(value, resourceType, isResource: true);
                return;
            }

            if (type.IsPrimitive)
            {
                Primitive(value, type);
            }
            else if (value.ValueKind == JsonValueKind.Object)
            {
                Object(value, type, isResource: false);
            }
            else
            {
                Issue($"a {type.Name} must be a JSON object.");
            }
        }

        private void Primitive(JsonElement value, FhirJsonType type)
        {
            var clr = type.ValueClr!;
            if (clr == typeof(bool))
            {
                if (value.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                {
                    Issue($"a boolean must be true or false.");
                }
            }
            else if (clr == typeof(int) || clr == typeof(long))
            {
                if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out var n) || (clr == typeof(int) && n is < int.MinValue or > int.MaxValue))
                {
                    Issue($"an {type.Name} must be a JSON whole number.");
                }
            }
            else if (clr == typeof(decimal))
            {
                if (value.ValueKind != JsonValueKind.Number || !value.TryGetDecimal(out _))
                {
                    Issue($"a decimal must be a JSON number.");
                }
            }
            else if (value.ValueKind != JsonValueKind.String)
            {
                Issue($"a {type.Name} must be a JSON string.");
            }
            else if (type.DateKind is { } kind)
            {
                // Most values have one of the common shapes the fast check knows; the SDK decides the rest.
                var raw = System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(value);
                if (raw.Length >= 2 && FhirDateText.IsCertainlyValid(raw[1..^1], kind))
                {
                    return;
                }

                var text = value.GetString()!;
                var valid = kind switch
                {
                    FhirDateText.Kind.Date => Date.IsValidValue(text),
                    FhirDateText.Kind.DateTime => FhirDateTime.IsValidValue(text),
                    FhirDateText.Kind.Time => Time.IsValidValue(text),
                    _ => Instant.IsValidValue(text),
                };
                if (!valid)
                {
                    Issue($"'{text}' is not a valid {type.Name}.");
                }
            }
        }
    }
}
