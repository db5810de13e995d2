using System.Collections.Frozen;
using Hl7.Fhir.FhirPath;
using Hl7.Fhir.Model;
using Hl7.Fhir.Specification.Source;

namespace Helios.Storage.Indexing;

/// <summary>
/// Every R4 search parameter the SDK defines (token, string, reference, date, number, quantity, uri), compiled per
/// resource type, plus the R4 patient CompartmentDefinition. Built once per process.
/// </summary>
public sealed class SearchParameterRegistry
{
    private static readonly Lazy<SearchParameterRegistry> s_instance = new(() => new SearchParameterRegistry(), LazyThreadSafetyMode.ExecutionAndPublication);

    private readonly FrozenDictionary<string, FrozenDictionary<string, SearchParameterInfo>> _byType;
    private readonly FrozenDictionary<string, string[]> _patientCompartmentParams;

    private static readonly (string Name, SearchParamType Type, string Expression)[] s_metaParameters =
    [
        ("_tag", SearchParamType.Token, "Resource.meta.tag"),
        ("_security", SearchParamType.Token, "Resource.meta.security"),
        ("_profile", SearchParamType.Uri, "Resource.meta.profile"),
        ("_source", SearchParamType.Uri, "Resource.meta.source"),
    ];

    public static SearchParameterRegistry Instance => s_instance.Value;

    /// <summary>Resource types that are members of the patient compartment (Patient itself included).</summary>
    public IReadOnlyCollection<string> PatientCompartmentTypes => _patientCompartmentParams.Keys;

    public IReadOnlyCollection<string> ResourceTypes => _byType.Keys;

    /// <summary><see cref="ResourceTypes"/> as a set, built once.</summary>
    public IReadOnlySet<string> ResourceTypeSet { get; }

    /// <summary>The types a Patient or Group export covers: the patient compartment's members and Patient, built once.</summary>
    public IReadOnlySet<string> PatientCompartmentTypeSet { get; }

    private SearchParameterRegistry()
    {
        var indexedTypes = new HashSet<SearchParamType>
        {
            SearchParamType.Token, SearchParamType.String, SearchParamType.Reference, SearchParamType.Date,
            SearchParamType.Number, SearchParamType.Quantity, SearchParamType.Uri,
        };
        var byType = new Dictionary<string, FrozenDictionary<string, SearchParameterInfo>>(StringComparer.Ordinal);
        var definitions = ModelInfo.SearchParameters.Where(sp => indexedTypes.Contains(sp.Type) && !string.IsNullOrEmpty(sp.Expression) && sp.Name is not null).ToList();
        foreach (var resourceType in ModelInfo.SupportedResources)
        {
            var isDomain = ModelInfo.GetTypeForFhirType(resourceType) is { } clr && typeof(DomainResource).IsAssignableFrom(clr);
            var parameters = new Dictionary<string, SearchParameterInfo>(StringComparer.Ordinal);
            foreach (var sp in definitions)
            {
                var applies = sp.Resource == resourceType || sp.Resource == "Resource" || (isDomain && sp.Resource == "DomainResource");
                if (!applies || parameters.ContainsKey(sp.Name!) || sp.Name is "_id" or "_lastUpdated")
                {
                    continue;
                }

                var (select, paths) = Compile(sp.Expression!, resourceType);
                if (select is null)
                {
                    continue;
                }

                var targets = (sp.Target ?? []).Select(t => t.ToString()).ToArray();
                parameters[sp.Name!] = new SearchParameterInfo(resourceType, sp.Name!, sp.Type, sp.Expression!, targets, select, paths);
            }

            // The SDK's list lacks the common meta parameters of R4 (they apply to every resource).
            foreach (var (name, type, expression) in s_metaParameters)
            {
                if (!parameters.ContainsKey(name) && Compile(expression, resourceType) is ({ } select, var paths))
                {
                    parameters[name] = new SearchParameterInfo(resourceType, name, type, expression, [], select, paths);
                }
            }

            DeriveUnions(parameters.Values);
            byType[resourceType] = parameters.ToFrozenDictionary(StringComparer.Ordinal);
        }

        var keys = new Dictionary<int, SearchParameterInfo>();
        foreach (var parameter in byType.Values.SelectMany(p => p.Values))
        {
            if (!keys.TryAdd(parameter.Key, parameter))
            {
                var other = keys[parameter.Key];
                throw new InvalidOperationException(
                    $"Search parameters {other.ResourceType}.{other.Name} and {parameter.ResourceType}.{parameter.Name} have the same index key {parameter.Key}.");
            }
        }

        _byType = byType.ToFrozenDictionary(StringComparer.Ordinal);
        _patientCompartmentParams = LoadPatientCompartment();
        ResourceTypeSet = _byType.Keys.ToFrozenSet(StringComparer.Ordinal);
        PatientCompartmentTypeSet = _patientCompartmentParams.Keys.Append("Patient").ToFrozenSet(StringComparer.Ordinal);
    }

    /// <summary>Every parameter of every type (stored and derived).</summary>
    public IEnumerable<SearchParameterInfo> All => _byType.Values.SelectMany(p => p.Values);

    /// <summary>The index key of a stored parameter (see <see cref="SearchParameterInfo.Key"/>).</summary>
    public int KeyOf(string resourceType, string name) =>
        Find(resourceType, name)?.Key ?? throw new ArgumentException($"{resourceType} has no search parameter '{name}'.", nameof(name));

    /// <summary>
    /// A parameter whose expression is a union of paths that are each exactly another parameter's only path (of the
    /// same kind) is answered by those parameters' rows and stores none of its own: on Synthea data the
    /// Observation <c>combo-*</c> parameters alone would add 8% to the index rows.
    /// </summary>
    private static void DeriveUnions(IEnumerable<SearchParameterInfo> parameters)
    {
        var single = parameters.Where(p => p.Paths is { Count: 1 }).OrderBy(p => p.Name, StringComparer.Ordinal).ToList();
        foreach (var parameter in parameters)
        {
            if (parameter.Paths is not { Count: > 1 } paths)
            {
                continue;
            }

            var sources = new List<SearchParameterInfo>();
            foreach (var path in paths)
            {
                var source = single.FirstOrDefault(q => q != parameter && q.Kind == parameter.Kind && q.Paths![0].SameAs(path));
                if (source is null || sources.Contains(source))
                {
                    sources.Clear();
                    break;
                }

                sources.Add(source);
            }

            if (sources.Count > 0)
            {
                parameter.Sources = sources;
            }
        }
    }

    public IReadOnlyCollection<SearchParameterInfo> ForType(string resourceType) =>
        _byType.TryGetValue(resourceType, out var p) ? p.Values : [];

    public SearchParameterInfo? Find(string resourceType, string name) =>
        _byType.TryGetValue(resourceType, out var p) && p.TryGetValue(name, out var info) ? info : null;

    public bool IsKnownType(string resourceType) => _byType.ContainsKey(resourceType);

    /// <summary>The reference parameters that put a resource of this type into a patient's compartment.</summary>
    public IReadOnlyList<string> PatientCompartmentParams(string resourceType) =>
        _patientCompartmentParams.TryGetValue(resourceType, out var p) ? p : [];

    private static (Func<Resource, List<Base>>? Select, List<ElementPath>? Paths) Compile(string expression, string resourceType)
    {
        if (ElementPath.TryCompile(expression, resourceType, out var paths))
        {
            if (paths.Count == 0)
            {
                return (null, null);
            }

            return (resource =>
            {
                var output = new List<Base>();
                foreach (var path in paths)
                {
                    path.Select(resource, output);
                }

                return output;
            }, paths);
        }

        // Outside the compiled subset: evaluate with the SDK's FHIRPath engine, on the branches for this type.
        var branches = expression.Split('|').Select(b => b.Trim())
            .Where(b => b.TrimStart('(').StartsWith(resourceType + ".", StringComparison.Ordinal)
                        || b.TrimStart('(').StartsWith("Resource.", StringComparison.Ordinal))
            .ToList();
        if (branches.Count == 0)
        {
            return (null, null);
        }

        var own = string.Join(" | ", branches);
        return (resource =>
        {
            try
            {
                return resource.Select(own).Where(b => b is not null).Select(b => b!).ToList();
            }
            catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or FormatException)
            {
                return [];
            }
        }, null);
    }

    private static FrozenDictionary<string, string[]> LoadPatientCompartment()
    {
        var source = ZipSource.CreateValidationSource();
        var definition = source.ResolveByCanonicalUri("http://hl7.org/fhir/CompartmentDefinition/patient") as CompartmentDefinition
            ?? throw new InvalidOperationException("The R4 patient CompartmentDefinition is missing from the specification package.");
        var result = new Dictionary<string, string[]>(StringComparer.Ordinal);
        foreach (var entry in definition.Resource)
        {
            var type = entry.Code?.ToString();
            if (type is null)
            {
                continue;
            }

            var parameters = entry.Param.Where(p => p is not null && p != "{def}").Select(p => p!).ToArray();
            if (parameters.Length > 0 || type == "Patient")
            {
                result[type] = parameters;
            }
        }

        return result.ToFrozenDictionary(StringComparer.Ordinal);
    }
}
