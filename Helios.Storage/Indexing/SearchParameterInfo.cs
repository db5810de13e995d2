using Hl7.Fhir.Model;

namespace Helios.Storage.Indexing;

/// <summary>A search parameter as this server indexes it for one resource type.</summary>
public sealed class SearchParameterInfo
{
    internal SearchParameterInfo(string resourceType, string name, SearchParamType type, string expression, IReadOnlyList<string> targets, Func<Resource, List<Base>> select, IReadOnlyList<ElementPath>? paths)
    {
        ResourceType = resourceType;
        Name = name;
        Type = type;
        Expression = expression;
        Targets = targets;
        Select = select;
        Paths = paths;
        Key = KeyOf(resourceType, name);
        Sources = [this];
    }

    /// <summary>The parameter's key in the index tables (column <c>pid</c>): a stable 31-bit fold of the 64-bit FNV-1a hash of
    /// <c>Type.name</c>, the same in every process and release (the registry refuses collisions).</summary>
    public int Key { get; }

    /// <summary>The stored parameters whose index rows answer this one: itself, or, for a union of other parameters'
    /// paths (such as Observation's <c>combo-code</c> = <c>code</c> | <c>component-code</c>), those parameters. A
    /// derived parameter has no rows of its own.</summary>
    public IReadOnlyList<SearchParameterInfo> Sources { get; internal set; }

    public bool IsStored => Sources.Count == 1 && ReferenceEquals(Sources[0], this);

    /// <summary>Whether an index row stored under <paramref name="rowParam"/> answers this parameter.</summary>
    public bool IsAnsweredBy(string rowParam)
    {
        foreach (var source in Sources)
        {
            if (string.Equals(source.Name, rowParam, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    internal static int KeyOf(string resourceType, string name)
    {
        var hash = Fnv1a.Hash(resourceType, '.', name);
        return (int)((hash ^ (hash >> 32)) & 0x7FFFFFFF);
    }

    public string ResourceType { get; }
    public string Name { get; }
    public SearchParamType Type { get; }
    public string Expression { get; }

    /// <summary>Resource types a reference parameter may point to.</summary>
    public IReadOnlyList<string> Targets { get; }

    internal Func<Resource, List<Base>> Select { get; }

    /// <summary>The compiled programs (usable on POCOs and on JSON); null when the SDK's FHIRPath engine evaluates
    /// the expression.</summary>
    internal IReadOnlyList<ElementPath>? Paths { get; }

    public IndexKind Kind => Type switch
    {
        SearchParamType.Token => IndexKind.Token,
        SearchParamType.String => IndexKind.String,
        SearchParamType.Reference => IndexKind.Reference,
        SearchParamType.Date => IndexKind.Date,
        SearchParamType.Number => IndexKind.Number,
        SearchParamType.Quantity => IndexKind.Quantity,
        SearchParamType.Uri => IndexKind.Uri,
        _ => throw new InvalidOperationException($"Search parameter type {Type} is not indexed."),
    };
}
