using System.Collections.Concurrent;
using System.Collections.Frozen;
using Hl7.Fhir.Introspection;
using Hl7.Fhir.Model;

namespace Helios.Storage.Fhir;

/// <summary>
/// What the JSON-native paths need to know of a FHIR type, derived once from the SDK's class mappings: its FHIR
/// name, whether it is a primitive (and the CLR kind of its value), and its elements by JSON name.
/// </summary>
internal sealed class FhirJsonType
{
    private static readonly ConcurrentDictionary<Type, FhirJsonType> s_byClr = new();
    private static readonly ConcurrentDictionary<string, FhirJsonType> s_byName = new(StringComparer.Ordinal);

    private readonly ClassMapping _mapping;
    private readonly FrozenDictionary<string, FhirJsonElement> _elements;
    private readonly ConcurrentDictionary<string, (FhirJsonElement Element, FhirJsonType Type)?> _choices = new(StringComparer.Ordinal);

    private FhirJsonType(ClassMapping mapping)
    {
        _mapping = mapping;
        Clr = mapping.NativeType;
        Name = Clr.IsGenericType && Clr.GetGenericTypeDefinition() == typeof(Code<>) ? "code" : mapping.Name;
        ValueClr = mapping.PropertyMappings.FirstOrDefault(p => p.RepresentsValueElement)?.ImplementingType;
        IsResource = mapping.IsResource;
        IsQuantity = typeof(Quantity).IsAssignableFrom(Clr);
        EnumType = Clr.IsGenericType && Clr.GetGenericTypeDefinition() == typeof(Code<>) ? Clr.GetGenericArguments()[0] : null;
        _elements = mapping.PropertyMappings.ToFrozenDictionary(p => p.Name, p => new FhirJsonElement(p), StringComparer.Ordinal);
        _elementsBySpan = _elements.GetAlternateLookup<ReadOnlySpan<char>>();
        _choicesBySpan = _choices.GetAlternateLookup<ReadOnlySpan<char>>();
        DateKind = Name switch
        {
            "date" => FhirDateText.Kind.Date,
            "dateTime" => FhirDateText.Kind.DateTime,
            "instant" => FhirDateText.Kind.Instant,
            "time" => FhirDateText.Kind.Time,
            _ => null,
        };
    }

    private readonly FrozenDictionary<string, FhirJsonElement>.AlternateLookup<ReadOnlySpan<char>> _elementsBySpan;
    private readonly ConcurrentDictionary<string, (FhirJsonElement Element, FhirJsonType Type)?>.AlternateLookup<ReadOnlySpan<char>> _choicesBySpan;

    /// <summary>For the date and time primitives, which of them.</summary>
    public FhirDateText.Kind? DateKind { get; }

    /// <summary>The FHIR type name (<c>code</c> for bound codes, <c>Reference</c>, <c>dateTime</c>, ...).</summary>
    public string Name { get; }

    public Type Clr { get; }

    /// <summary>For primitives, the CLR type of the value (string, bool, int, long, decimal, DateTimeOffset, byte[]).</summary>
    public Type? ValueClr { get; }

    public bool IsPrimitive => ValueClr is not null;

    /// <summary>The elements with a minimum cardinality above 0 (by name).</summary>
    public IReadOnlyList<string> MandatoryElements => _mandatory ??= [.. _mapping.PropertyMappings.Where(p => p.IsMandatoryElement).Select(p => p.Name)];

    private IReadOnlyList<string>? _mandatory;

    public bool IsResource { get; }

    /// <summary>Quantity or one of its profiles (Age, Duration, Distance, Count, SimpleQuantity, MoneyQuantity).</summary>
    public bool IsQuantity { get; }

    /// <summary>For <c>Code&lt;T&gt;</c>: the enum whose literals imply a code system.</summary>
    public Type? EnumType { get; }

    public static FhirJsonType? ForName(string fhirTypeName)
    {
        if (s_byName.TryGetValue(fhirTypeName, out var known))
        {
            return known;
        }

        // Only names that resolve are remembered: input (resource types, choice suffixes) cannot grow the cache.
        var type = ModelInfo.ModelInspector.FindClassMapping(fhirTypeName) is { } m ? ForClr(m.NativeType) : null;
        if (type is not null)
        {
            s_byName.TryAdd(fhirTypeName, type);
        }

        return type;
    }

    public static FhirJsonType ForClr(Type clr) =>
        s_byClr.GetOrAdd(clr, static t => new FhirJsonType(ModelInfo.ModelInspector.FindOrImportClassMapping(t)
            ?? throw new InvalidOperationException($"No FHIR class mapping for {t}.")));

    /// <summary>The element with this exact JSON name (not a choice's typed name), or null.</summary>
    public FhirJsonElement? Element(string name) => _elements.GetValueOrDefault(name);

    /// <inheritdoc cref="Element(string)"/>
    public FhirJsonElement? Element(ReadOnlySpan<char> name) => _elementsBySpan.TryGetValue(name, out var element) ? element : null;

    /// <summary>Resolves a typed choice name (<c>valueQuantity</c>) to its element and type; null when unknown or
    /// the type is not one the element allows.</summary>
    public (FhirJsonElement Element, FhirJsonType Type)? ChoiceElement(string jsonName)
    {
        if (_choices.TryGetValue(jsonName, out var known))
        {
            return known;
        }

        // Only names that resolve are remembered: input cannot grow the cache with made-up names.
        var resolved = ResolveChoice(jsonName);
        if (resolved is not null)
        {
            _choices.TryAdd(jsonName, resolved);
        }

        return resolved;
    }

    /// <summary><see cref="ChoiceElement(string)"/> for a name not yet turned into a string: a choice seen before is
    /// found without allocating, and <paramref name="jsonName"/> is its cached name.</summary>
    public (FhirJsonElement Element, FhirJsonType Type)? ChoiceElement(ReadOnlySpan<char> name, out string jsonName)
    {
        if (_choicesBySpan.TryGetValue(name, out var cached, out var known))
        {
            jsonName = cached;
            return known;
        }

        jsonName = name.ToString();
        return ChoiceElement(jsonName);
    }

    private (FhirJsonElement Element, FhirJsonType Type)? ResolveChoice(string jsonName)
    {
        if (_mapping.FindMappedElementByChoiceName(jsonName) is not { Choice: ChoiceType.DatatypeChoice } pm
            || jsonName.Length <= pm.Name.Length || !char.IsUpper(jsonName[pm.Name.Length]))
        {
            return null;
        }

        var element = Element(pm.Name);
        var type = ForName(jsonName[pm.Name.Length..]);
        if (element is null || type is null || !pm.FhirType.Any(allowed => allowed.IsAssignableFrom(type.Clr)))
        {
            return null;
        }

        return (element, type);
    }
}

/// <summary>An element of a FHIR type as JSON sees it.</summary>
internal sealed class FhirJsonElement
{
    private readonly PropertyMapping _mapping;
    private FhirJsonType? _type;

    public FhirJsonElement(PropertyMapping mapping)
    {
        _mapping = mapping;
        Name = mapping.Name;
        IsCollection = mapping.IsCollection;
        IsChoice = mapping.Choice == ChoiceType.DatatypeChoice;
        IsResource = mapping.Choice == ChoiceType.ResourceChoice || typeof(Resource).IsAssignableFrom(mapping.ImplementingType);
    }

    public string Name { get; }

    public bool IsCollection { get; }

    /// <summary>A <c>[x]</c> element: JSON names carry the type as a suffix.</summary>
    public bool IsChoice { get; }

    /// <summary>Holds whole resources (<c>contained</c>, <c>Bundle.entry.resource</c>): the type is in <c>resourceType</c>.</summary>
    public bool IsResource { get; }

    /// <summary>The element's type (not meaningful for choice and resource elements).</summary>
    public FhirJsonType Type => _type ??= FhirJsonType.ForClr(
        // Some elements are declared with a base class (Meta.profile as PrimitiveType); the FHIR type names the real one.
        _mapping.FhirType is [var single] && single != _mapping.ImplementingType && _mapping.ImplementingType.IsAssignableFrom(single)
            ? single
            : _mapping.ImplementingType);
}
