using System.Globalization;
using System.Text.RegularExpressions;
using Helios.Storage.Fhir;
using Helios.Storage.Search;

namespace Helios.Export.Requests;

/// <summary>
/// Validates kick-off parameters (from the query string or a POSTed Parameters resource, repeats treated as
/// comma-joined). Unsupported parameters and unusable values are refused, or, under <c>Prefer: handling=lenient</c>,
/// dropped and reported in <see cref="ExportRequest.Ignored"/>.
/// </summary>
public static partial class ExportRequestParser
{
    /// <summary>Search result parameters, which shape a search's answer rather than select resources: the IG says
    /// they SHALL NOT be used in a <c>_typeFilter</c>.</summary>
    private static readonly HashSet<string> s_resultParameters = new(StringComparer.Ordinal)
    {
        "_count", "_sort", "_include", "_revinclude", "_elements", "_summary", "_total", "_contained", "_containedType", "_cursor", "_format", "_pretty",
    };

    /// <summary>A comma that starts the next of several comma-joined queries (STU2 form): one followed by a type name
    /// and its '?' (or the end). Commas inside a query's values are not followed by that.</summary>
    [GeneratedRegex(@",(?=\s*[A-Z][A-Za-z]+(?:\?|\s*$|\s*,))")]
    private static partial Regex QuerySeparator();

    [GeneratedRegex(@"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00))$")]
    private static partial Regex InstantPattern();

    /// <summary>The id of a <c>Patient/[id]</c> reference (relative, or absolute ending in it), or null.</summary>
    private static string? PatientId(string reference)
    {
        var at = reference.LastIndexOf("Patient/", StringComparison.Ordinal);
        if (at < 0 || (at > 0 && reference[at - 1] != '/'))
        {
            return null;
        }

        var id = reference[(at + "Patient/".Length)..];
        return id.Length is > 0 and <= 64 && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.') ? id : null;
    }

    /// <summary>One FHIR instant (an unencoded '+' in the offset arrives as a space), or null after refusing it.</summary>
    private static DateTimeOffset? ParseInstant(string name, int occurrences, List<string> values, Action<string> refuse)
    {
        if (occurrences != 1 || values.Count != 1)
        {
            refuse($"{name} must be given once, as one FHIR instant.");
            return null;
        }

        var text = values[0].Replace(' ', '+');
        if (!InstantPattern().IsMatch(text) || !DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.None, out var parsed))
        {
            refuse($"{name} '{values[0]}' is not a FHIR instant: give a date, a time to the second and a time zone, e.g. 2024-01-31T12:00:00Z.");
            return null;
        }

        return parsed;
    }

    /// <summary>One <c>_typeFilter</c> query (<c>Type?name=value&amp;...</c>, its parts percent-decoded once more),
    /// checked by the search parser the REST API uses; null when refused leniently.</summary>
    private static ExportTypeFilter? ParseTypeFilter(
        string query, ExportLevel level, IReadOnlySet<string> knownTypes, IReadOnlySet<string> compartmentTypes, SearchQueryParser parser, Action<string> refuse)
    {
        var question = query.IndexOf('?', StringComparison.Ordinal);
        var type = question < 0 ? query : query[..question];
        if (!knownTypes.Contains(type))
        {
            refuse($"_typeFilter '{query}' does not start with a FHIR R4 resource type this server holds: write Type?name=value, e.g. Observation?category=laboratory.");
            return null;
        }

        if (level != ExportLevel.System && !compartmentTypes.Contains(type))
        {
            refuse($"_typeFilter '{query}' filters {type}, which is not in the Patient compartment, so a {(level == ExportLevel.Group ? "Group" : "Patient")}-level export never returns it.");
            return null;
        }

        var pairs = new List<KeyValuePair<string, string>>();
        foreach (var part in (question < 0 ? string.Empty : query[(question + 1)..]).Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = part.IndexOf('=', StringComparison.Ordinal);
            var name = Unescape(equals < 0 ? part : part[..equals]);
            var value = equals < 0 ? string.Empty : Unescape(part[(equals + 1)..]);
            var bareName = name.Split(':')[0];
            if (s_resultParameters.Contains(bareName))
            {
                throw new ExportRequestException(
                    $"_typeFilter '{query}' uses {bareName}, a search result parameter: a _typeFilter only selects resources (the Bulk Data IG forbids _sort, _include, _elements and the like in it).");
            }

            pairs.Add(new KeyValuePair<string, string>(name, value));
        }

        try
        {
            var parsed = parser.Parse(type, pairs, strict: false);
            foreach (var problem in parsed.Ignored)
            {
                refuse($"_typeFilter '{query}': {problem}; the filter was applied without it.");
            }

            // Keep only what the search parser took: a leniently dropped parameter must not come back at run time.
            var dropped = parsed.Ignored.Count == 0 ? [] : pairs.Where(p => !parsed.Query.Criteria.Any(c => c.Name == p.Key.Split(':')[0])).ToList();
            return new ExportTypeFilter(type, pairs.Except(dropped).ToList());
        }
        catch (SearchException ex)
        {
            throw new ExportRequestException($"_typeFilter '{query}': {ex.Message}");
        }
    }

    /// <summary>Why an <c>_elements</c> entry cannot be applied (<c>Type.element</c> or <c>element</c>, root elements
    /// only), or null.</summary>
    private static string? ElementProblem(string element, IReadOnlySet<string> knownTypes)
    {
        var parts = element.Split('.');
        if (parts.Length > 2 || (parts.Length == 2 && !knownTypes.Contains(parts[0])))
        {
            return $"_elements '{element}' is not a root element: write Type.element (e.g. Patient.birthDate) or element (e.g. status); nested elements cannot be selected.";
        }

        if (parts.Length == 2)
        {
            return ElementsProjection.IsRootElement(parts[0], parts[1]) ? null : $"_elements '{element}': {parts[0]} has no element '{parts[1]}'.";
        }

        return knownTypes.Any(type => ElementsProjection.IsRootElement(type, element)) ? null : $"_elements '{element}' is not an element of any resource type.";
    }

    /// <summary>Adds each value not yet in <paramref name="target"/>, or refuses it with what <paramref name="problem"/> says.</summary>
    private static void AddDistinct(List<string> target, IEnumerable<string> values, Action<string> refuse, Func<string, string?> problem)
    {
        foreach (var value in values)
        {
            if (problem(value) is { } message)
            {
                refuse(message);
            }
            else if (!target.Contains(value, StringComparer.Ordinal))
            {
                target.Add(value);
            }
        }
    }

    private static string Unescape(string text)
    {
        try
        {
            return Uri.UnescapeDataString(text);
        }
        catch (UriFormatException)
        {
            return text;
        }
    }

    public static ExportRequest Parse(
        ExportLevel level,
        string? groupId,
        IReadOnlyList<KeyValuePair<string, string>> parameters,
        bool lenient,
        IReadOnlySet<string> knownTypes,
        IReadOnlySet<string> compartmentTypes,
        SearchQueryParser filterParser)
    {
        ArgumentNullException.ThrowIfNull(filterParser);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(knownTypes);
        ArgumentNullException.ThrowIfNull(compartmentTypes);
        var ignored = new List<string>();
        void Refuse(string message)
        {
            if (!lenient)
            {
                throw new ExportRequestException(message + " (Send Prefer: handling=lenient to have it ignored instead.)");
            }

            ignored.Add(message);
        }

        List<string>? types = null;
        DateTimeOffset? since = null;
        DateTimeOffset? until = null;
        List<string>? patients = null;
        List<ExportTypeFilter>? filters = null;
        List<string>? elements = null;
        List<string>? associated = null;
        var partialManifests = false;
        string? organizeBy = null;
        var format = ExportFormats.FhirNdjson;
        foreach (var group in parameters.GroupBy(p => p.Key, StringComparer.Ordinal))
        {
            var values = group.SelectMany(p => p.Value.Split(',')).Select(v => v.Trim()).Where(v => v.Length > 0).ToList();
            switch (group.Key)
            {
                case "_outputFormat":
                    // An unencoded '+' arrives as a space through form decoding.
                    var formats = values.Select(v => v.Replace(' ', '+')).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
                    if (formats.Count != 1 || !ExportFormats.Accepted.Contains(formats[0]))
                    {
                        throw new ExportRequestException(
                            $"_outputFormat '{string.Join(",", group.Select(p => p.Value))}' is not supported: use application/fhir+ndjson (also accepted: application/ndjson, ndjson).");
                    }

                    format = ExportFormats.FhirNdjson;
                    break;
                case "_since":
                    since = ParseInstant(group.Key, group.Count(), values, Refuse) ?? since;
                    break;
                case "_until":
                    until = ParseInstant(group.Key, group.Count(), values, Refuse) ?? until;
                    break;
                case "patient":
                    if (level == ExportLevel.System)
                    {
                        Refuse("patient applies to Patient- and Group-level exports only (POST /Patient/$export or /Group/[id]/$export).");
                        break;
                    }

                    patients ??= [];
                    foreach (var reference in values)
                    {
                        if (PatientId(reference) is { } id)
                        {
                            if (!patients.Contains(id, StringComparer.Ordinal))
                            {
                                patients.Add(id);
                            }
                        }
                        else
                        {
                            Refuse($"patient '{reference}' is not a Patient reference: send valueReference {{\"reference\": \"Patient/[id]\"}}.");
                        }
                    }

                    break;
                case "_typeFilter":
                    filters ??= [];
                    foreach (var query in group.SelectMany(p => QuerySeparator().Split(p.Value)).Select(q => q.Trim()).Where(q => q.Length > 0))
                    {
                        if (ParseTypeFilter(query, level, knownTypes, compartmentTypes, filterParser, Refuse) is { } filter)
                        {
                            filters.Add(filter);
                        }
                    }

                    break;
                case "organizeOutputBy":
                    if (group.Count() != 1 || values.Count != 1 || values[0] != "Patient")
                    {
                        Refuse($"organizeOutputBy '{string.Join(",", group.Select(p => p.Value))}' is not supported: output can be organized by Patient only.");
                        break;
                    }

                    organizeBy = values[0];
                    break;
                case "allowPartialManifests":
                    if (group.Count() != 1 || values.Count != 1 || values[0] is not ("true" or "false"))
                    {
                        Refuse($"allowPartialManifests must be given once, as true or false, not '{string.Join(",", group.Select(p => p.Value))}'.");
                        break;
                    }

                    partialManifests = values[0] == "true";
                    break;
                case "includeAssociatedData":
                    // A Coding (STU4) arrives as its code.
                    AddDistinct(associated ??= [], values, Refuse, value => AssociatedData.Supported.Contains(value, StringComparer.Ordinal)
                        ? null
                        : $"includeAssociatedData '{value}' is not supported: use {AssociatedData.LatestProvenance}, {AssociatedData.RelevantProvenance}, or {AssociatedData.Referenced} (the resources of other types that exported resources reference).");
                    break;
                case "_elements":
                    AddDistinct(elements ??= [], values, Refuse, element => ElementProblem(element, knownTypes));
                    break;
                case "_type":
                    types ??= [];
                    foreach (var type in values)
                    {
                        if (!knownTypes.Contains(type))
                        {
                            Refuse($"_type '{type}' is not a FHIR R4 resource type this server holds.");
                        }
                        else if (level != ExportLevel.System && !compartmentTypes.Contains(type))
                        {
                            Refuse($"_type '{type}' is not in the Patient compartment, so a {(level == ExportLevel.Group ? "Group" : "Patient")}-level export cannot return it; use the system-level $export.");
                        }
                        else if (!types.Contains(type, StringComparer.Ordinal))
                        {
                            types.Add(type);
                        }
                    }

                    break;
                default:
                    Refuse($"'{group.Key}' is not a parameter of $export.");
                    break;
            }
        }

        if (since is { } from && until is { } to && to < from)
        {
            throw new ExportRequestException($"_until ({to:o}) is earlier than _since ({from:o}): no change could fall between them.");
        }

        if (filters is not null && types is not null)
        {
            foreach (var filter in filters.Where(f => !types.Contains(f.Type, StringComparer.Ordinal)))
            {
                ignored.Add($"_typeFilter '{filter}' has no effect: {filter.Type} is not among the types requested with _type.");
            }

            filters.RemoveAll(f => !types.Contains(f.Type, StringComparer.Ordinal));
        }

        return new ExportRequest
        {
            TypeFilters = filters is { Count: > 0 } ? filters : null,
            Elements = elements is { Count: > 0 } ? elements : null,
            AssociatedData = associated is { Count: > 0 } ? associated : null,
            AllowPartialManifests = partialManifests,
            OrganizeOutputBy = organizeBy,
            Until = until,
            Patients = patients,
            Level = level,
            GroupId = groupId,
            Types = types,
            Since = since,
            OutputFormat = format,
            Ignored = ignored,
        };
    }
}
