namespace Helios.Storage.Indexing;

/// <summary>
/// A search parameter expression compiled to a list of navigation programs over Firely POCOs. It covers the
/// FHIRPath subset the R4 search parameter definitions use (paths, unions, <c>as</c>/<c>ofType</c>,
/// <c>where(resolve() is T)</c>, <c>where(field = 'literal')</c>); anything else is left to the SDK's FHIRPath
/// engine by <see cref="SearchParameterRegistry"/>. The compiler is in <c>ElementPath.Compiler.cs</c>; the program runs
/// over POCOs (<c>ElementPath.PocoEvaluator.cs</c>) and over JSON (<c>ElementPath.JsonEvaluator.cs</c>).
/// </summary>
internal sealed partial class ElementPath
{
    private readonly IReadOnlyList<Step> _steps;

    private ElementPath(IReadOnlyList<Step> steps) => _steps = steps;

    /// <summary>Whether both programs take the same steps (and so select the same nodes).</summary>
    public bool SameAs(ElementPath other) => _steps.SequenceEqual(other._steps);

    private enum StepKind
    {
        Child,
        OfType,
        ResolveIs,
        WhereEquals,
    }

    private sealed record Step(StepKind Kind, string Name, string? Literal);
}
