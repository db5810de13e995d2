using System.Globalization;
using System.Text.RegularExpressions;

namespace Helios.Export.Requests;

/// <summary>
/// Validates kick-off parameters (from the query string or a POSTed Parameters resource, repeats treated as
/// comma-joined). Unsupported parameters and unusable values are refused, or, under <c>Prefer: handling=lenient</c>,
/// dropped and reported in <see cref="ExportRequest.Ignored"/>.
/// </summary>
public static partial class ExportRequestParser
{
    /// <summary>Bulk Data parameters Helios recognizes but does not implement yet.</summary>
    private static readonly HashSet<string> s_notYetSupported = new(StringComparer.Ordinal)
    {
        "_elements", "includeAssociatedData", "_typeFilter", "organizeOutputBy", "allowPartialManifests",
    };

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

    public static ExportRequest Parse(
        ExportLevel level,
        string? groupId,
        IReadOnlyList<KeyValuePair<string, string>> parameters,
        bool lenient,
        IReadOnlySet<string> knownTypes,
        IReadOnlySet<string> compartmentTypes)
    {
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
                    Refuse(s_notYetSupported.Contains(group.Key)
                        ? $"The $export parameter {group.Key} is not supported by this server yet."
                        : $"'{group.Key}' is not a parameter of $export.");
                    break;
            }
        }

        if (since is { } from && until is { } to && to < from)
        {
            throw new ExportRequestException($"_until ({to:o}) is earlier than _since ({from:o}): no change could fall between them.");
        }

        return new ExportRequest
        {
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
