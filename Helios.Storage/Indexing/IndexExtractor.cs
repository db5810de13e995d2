using System.Globalization;
using System.Text;
using Hl7.Fhir.Model;
using Hl7.Fhir.Utility;

namespace Helios.Storage.Indexing;

/// <summary>Extracts the search index rows and patient compartment membership of one resource.</summary>
public sealed class IndexExtractor(SearchParameterRegistry registry)
{
    public SearchParameterRegistry Registry => registry;

    public IndexEntries Extract(Resource resource)
    {
        ArgumentNullException.ThrowIfNull(resource);
        var entries = new IndexEntries();
        var type = resource.TypeName;
        foreach (var parameter in registry.ForType(type))
        {
            // A derived parameter (a union of others) is answered by its sources' rows.
            if (parameter.IsStored)
            {
                AddParameter(entries, parameter, resource);
            }
        }

        AddCompartments(entries, registry, type, resource.Id);
        return entries;
    }

    /// <summary>The rows of one parameter, evaluated on the POCO.</summary>
    internal static void AddParameter(IndexEntries entries, SearchParameterInfo parameter, Resource resource)
    {
        List<Base> values;
        try
        {
            values = parameter.Select(resource);
        }
        catch (InvalidCastException)
        {
            return;
        }

        foreach (var value in values)
        {
            Add(entries, parameter, value);
        }
    }

    /// <summary>Patient compartment membership from the extracted references (and a Patient's own id).</summary>
    internal static void AddCompartments(IndexEntries entries, SearchParameterRegistry registry, string type, string? id)
    {
        if (type == "Patient" && id is { Length: > 0 } selfId)
        {
            entries.Compartments.Add(selfId);
        }

        foreach (var param in registry.PatientCompartmentParams(type))
        {
            if (registry.Find(type, param) is not { } parameter)
            {
                continue;
            }

            foreach (var reference in entries.References)
            {
                if (reference.TargetType == "Patient" && parameter.IsAnsweredBy(reference.Param))
                {
                    entries.Compartments.Add(reference.TargetId);
                }
            }
        }
    }

    private static void Add(IndexEntries entries, SearchParameterInfo parameter, Base value)
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
                if (value is PrimitiveType { JsonValue: { } n } && TryDecimal(n, out var number))
                {
                    entries.Numbers.Add(new NumberEntry(name, number));
                }

                break;
            case IndexKind.Quantity:
                if (value is Quantity { Value: { } qv } q)
                {
                    entries.Quantities.Add(new QuantityEntry(name, q.System, q.Code ?? q.Unit, qv));
                    if (q.Unit is { Length: > 0 } unit && unit != q.Code)
                    {
                        entries.Quantities.Add(new QuantityEntry(name, null, unit, qv));
                    }
                }
                else if (value is Money { Value: { } mv } money)
                {
                    entries.Quantities.Add(new QuantityEntry(name, "urn:iso:std:iso:4217", money.Currency?.ToString(), mv));
                }

                break;
            case IndexKind.Uri:
                if (value is PrimitiveType { JsonValue: { } u })
                {
                    entries.Uris.Add(new UriEntry(name, u.ToString()!));
                }

                break;
        }
    }

    private static void AddToken(IndexEntries entries, string name, Base value)
    {
        switch (value)
        {
            case CodeableConcept cc:
                foreach (var coding in cc.Coding)
                {
                    AddCoding(entries, name, coding);
                }

                break;
            case Coding coding:
                AddCoding(entries, name, coding);
                break;
            case Identifier identifier when identifier.Value is not null || identifier.System is not null:
                entries.Tokens.Add(new TokenEntry(name, identifier.System, identifier.Value));
                break;
            case ContactPoint contact when contact.Value is not null:
                entries.Tokens.Add(new TokenEntry(name, contact.System?.GetLiteral(), contact.Value));
                break;
            case FhirBoolean { Value: { } b }:
                entries.Tokens.Add(new TokenEntry(name, null, b ? "true" : "false"));
                break;
            case PrimitiveType primitive when primitive.JsonValue is not null:
                entries.Tokens.Add(new TokenEntry(name, ImpliedSystem(primitive), primitive.ToString()));
                break;
        }
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<Type, System.Reflection.PropertyInfo?> s_enumValue = new();

    /// <summary>The code system implied by a bound enum (<c>Code&lt;T&gt;</c>), e.g. administrative-gender.</summary>
    private static string? ImpliedSystem(PrimitiveType primitive)
    {
        var property = s_enumValue.GetOrAdd(primitive.GetType(), static clr =>
            clr.IsGenericType && clr.GetGenericTypeDefinition() == typeof(Code<>)
                ? clr.GetProperty("Value", System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.DeclaredOnly)
                : null);
        return property?.GetValue(primitive) is Enum e ? s_enumSystem.GetOrAdd(e.GetType(), static (_, value) => value.GetSystem(), e) : null;
    }

    /// <summary>The code system of a bound enum type (one per type; the SDK looks it up by reflection each call).</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<Type, string?> s_enumSystem = new();

    private static void AddCoding(IndexEntries entries, string name, Coding coding)
    {
        if (coding.Code is not null || coding.System is not null)
        {
            entries.Tokens.Add(new TokenEntry(name, coding.System, coding.Code));
        }
    }

    private static void AddString(IndexEntries entries, string name, Base value)
    {
        switch (value)
        {
            case HumanName hn:
                AddStringValue(entries, name, hn.Family);
                foreach (var g in hn.Given)
                {
                    AddStringValue(entries, name, g);
                }

                foreach (var p in hn.Prefix)
                {
                    AddStringValue(entries, name, p);
                }

                foreach (var s in hn.Suffix)
                {
                    AddStringValue(entries, name, s);
                }

                AddStringValue(entries, name, hn.Text);
                break;
            case Address a:
                foreach (var line in a.Line)
                {
                    AddStringValue(entries, name, line);
                }

                AddStringValue(entries, name, a.City);
                AddStringValue(entries, name, a.District);
                AddStringValue(entries, name, a.State);
                AddStringValue(entries, name, a.PostalCode);
                AddStringValue(entries, name, a.Country);
                AddStringValue(entries, name, a.Text);
                break;
            case PrimitiveType { JsonValue: not null } p:
                AddStringValue(entries, name, p.ToString());
                break;
        }
    }

    internal static void AddStringValue(IndexEntries entries, string name, string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return;
        }

        var exact = text.Length > 256 ? text[..256] : text;
        entries.Strings.Add(new StringEntry(name, Normalize(exact), exact));
    }

    /// <summary>The normalized form used by string search: lower case, diacritics removed.</summary>
    public static string Normalize(string text)
    {
        var ascii = true;
        foreach (var c in text)
        {
            if (c > 127)
            {
                ascii = false;
                break;
            }
        }

        if (ascii)
        {
            return text.ToLowerInvariant();
        }

        var decomposed = text.Normalize(NormalizationForm.FormD);
        var sb = new StringBuilder(decomposed.Length);
        foreach (var c in decomposed)
        {
            if (CharUnicodeInfo.GetUnicodeCategory(c) != UnicodeCategory.NonSpacingMark)
            {
                sb.Append(c);
            }
        }

        return sb.ToString().Normalize(NormalizationForm.FormC).ToLowerInvariant();
    }

    private static void AddReference(IndexEntries entries, string name, Base value)
    {
        switch (value)
        {
            case ResourceReference r when r.Reference is { Length: > 0 } text && text[0] != '#':
                if (TryParseReference(text, out var type, out var id))
                {
                    entries.References.Add(new ReferenceEntry(name, type, id));
                }
                else
                {
                    entries.References.Add(new ReferenceEntry(name, null, text));
                }

                break;
            case PrimitiveType { JsonValue: { } url }:
                entries.References.Add(new ReferenceEntry(name, null, url.ToString()!));
                break;
        }
    }

    /// <summary>Parses a relative reference <c>Type/id</c> (optionally with <c>/_history/v</c>).</summary>
    public static bool TryParseReference(string reference, out string type, out string id)
    {
        type = id = string.Empty;
        if (reference.Contains("://", StringComparison.Ordinal) || reference.StartsWith("urn:", StringComparison.Ordinal))
        {
            return false;
        }

        var parts = reference.Split('/');
        if (parts.Length is 2 or 4 && (parts.Length == 2 || parts[2] == "_history") && ModelInfo.IsKnownResource(parts[0]) && parts[1].Length > 0)
        {
            type = parts[0];
            id = parts[1];
            return true;
        }

        return false;
    }

    private static void AddDate(IndexEntries entries, string name, Base value)
    {
        switch (value)
        {
            case Period period:
                long low = FhirDateRange.MinValue, high = FhirDateRange.MaxValue;
                var any = false;
                if (FhirDateRange.TryParse(period.Start, out var sLow, out _))
                {
                    low = sLow;
                    any = true;
                }

                if (FhirDateRange.TryParse(period.End, out _, out var eHigh))
                {
                    high = eHigh;
                    any = true;
                }

                if (any)
                {
                    entries.Dates.Add(new DateEntry(name, low, high));
                }

                break;
            case Timing timing:
                foreach (var e in timing.EventElement)
                {
                    if (FhirDateRange.TryParse(e.Value, out var tl, out var th))
                    {
                        entries.Dates.Add(new DateEntry(name, tl, th));
                    }
                }

                break;
            case Instant instant when instant.Value is { } iv:
                var micros = FhirDateRange.ToMicros(iv);
                entries.Dates.Add(new DateEntry(name, micros, micros));
                break;
            case PrimitiveType { JsonValue: not null } p:
                if (FhirDateRange.TryParse(p.ToString(), out var l, out var h))
                {
                    entries.Dates.Add(new DateEntry(name, l, h));
                }

                break;
        }
    }

    private static bool TryDecimal(object value, out decimal result)
    {
        switch (value)
        {
            case decimal d:
                result = d;
                return true;
            case int i:
                result = i;
                return true;
            case long l:
                result = l;
                return true;
            default:
                return decimal.TryParse(value.ToString(), NumberStyles.Float, CultureInfo.InvariantCulture, out result);
        }
    }
}
