using Helios.Storage.Indexing;

namespace Helios.Storage.Search;

/// <summary>One parameter of the query: <c>name[:modifier]=v1,v2</c>. <see cref="Parameter"/> is null for <c>_id</c> and <c>_lastUpdated</c>.</summary>
public sealed record SearchCriterion(string Name, SearchParameterInfo? Parameter, SearchModifier Modifier, string? ModifierType, IReadOnlyList<SearchValue> Values);
