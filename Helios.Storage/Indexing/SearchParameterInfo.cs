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
