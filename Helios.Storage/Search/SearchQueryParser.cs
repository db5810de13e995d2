using System.Globalization;
using Helios.Storage.Indexing;
using Hl7.Fhir.Model;

namespace Helios.Storage.Search;

/// <summary>
/// Turns <c>name[:modifier]=value</c> pairs into a <see cref="SearchQuery"/>. Unknown or unsupported parameters
/// throw under <c>handling=strict</c> and are ignored (and listed in <see cref="Parsed.Ignored"/>) under lenient.
/// The clock sets the width of the <c>ap</c> date prefix (relative to now).
/// </summary>
public sealed class SearchQueryParser(SearchParameterRegistry registry, TimeProvider? timeProvider = null)
{
    private readonly TimeProvider _time = timeProvider ?? TimeProvider.System;

    public const int MaxCount = 1000;

    /// <summary>Parameters that only shape the response; accepted and handled outside the query.</summary>
    private static readonly HashSet<string> s_ignoredControl = new(StringComparer.Ordinal) { "_format", "_pretty" };

    public sealed record Parsed(SearchQuery Query, IReadOnlyList<string> Ignored);

    /// <summary>Text a database can take as a value: no NUL and no unpaired surrogate (well-formed UTF-16).</summary>
    public static bool IsStorableText(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '\0' || char.IsLowSurrogate(c))
            {
                return false;
            }

            if (char.IsHighSurrogate(c))
            {
                if (i + 1 >= text.Length || !char.IsLowSurrogate(text[i + 1]))
                {
                    return false;
                }

                i++;
            }
        }

        return true;
    }

    private static string Printable(string text) =>
        new(text.Take(64).Select(c => char.IsSurrogate(c) || c == '\0' ? '\uFFFD' : c).ToArray());

    public Parsed Parse(string type, IEnumerable<KeyValuePair<string, string>> parameters, bool strict, int defaultCount = 20)
    {
        if (!registry.IsKnownType(type))
        {
            throw new SearchException($"'{type}' is not a FHIR R4 resource type.");
        }

        var query = new SearchQuery { Type = type, Count = defaultCount };
        var ignored = new List<string>();

        void Unsupported(string message)
        {
            if (strict)
            {
                throw new SearchException(message + " (the request asked for Prefer: handling=strict).");
            }

            ignored.Add(message);
        }

        foreach (var (rawKey, rawValue) in parameters)
        {
            var colon = rawKey.IndexOf(':');
            var name = colon >= 0 ? rawKey[..colon] : rawKey;
            var modifierText = colon >= 0 ? rawKey[(colon + 1)..] : null;
            var value = rawValue ?? string.Empty;
            if (!IsStorableText(rawKey) || !IsStorableText(value))
            {
                throw new SearchException($"The search parameter '{Printable(rawKey)}' has a name or value with a NUL character or an unpaired UTF-16 surrogate (e.g. a JSON \\ud83d escape without its pair), which no FHIR string can hold: send valid Unicode text.");
            }

            switch (name)
            {
                case "_count":
                    if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var count) || count < 0)
                    {
                        throw new SearchException($"_count must be a non-negative integer, not '{value}'.");
                    }

                    query.Count = Math.Min(count, MaxCount);
                    if (count == 0)
                    {
                        query.CountOnly = true;
                        query.IncludeTotal = true;
                    }

                    continue;
                case "_cursor":
                    query.Cursor = value;
                    continue;
                case "_total":
                    switch (value)
                    {
                        case "accurate" or "estimate":
                            query.IncludeTotal = true;
                            break;
                        case "none":
                            query.IncludeTotal = false;
                            break;
                        default:
                            throw new SearchException($"_total must be none, estimate or accurate, not '{value}'.");
                    }

                    continue;
                case "_summary" when value == "count":
                    query.CountOnly = true;
                    query.IncludeTotal = true;
                    continue;
                case "_sort":
                    query.Sort = ParseSort(type, value);
                    continue;
                case "_include" or "_revinclude":
                    var spec = ParseInclude(value, name);
                    if (spec is null)
                    {
                        Unsupported($"{name}={value} is not supported: use SourceType:searchParam[:TargetType] with a reference parameter");
                        continue;
                    }

                    if (modifierText is not null and not "iterate")
                    {
                        Unsupported($"{name}:{modifierText} is not supported");
                    }

                    (name == "_include" ? query.Includes : query.RevIncludes).Add(spec);
                    continue;
            }

            if (s_ignoredControl.Contains(name))
            {
                continue;
            }

            if (name == "_id")
            {
                if (modifierText is not null)
                {
                    Unsupported($"Modifier ':{modifierText}' is not supported on _id");
                    continue;
                }

                var ids = SplitValues(value).Select(v => new SearchValue { Code = v }).ToList();
                if (ids.Count > 0)
                {
                    query.Criteria.Add(new SearchCriterion(name, null, SearchModifier.None, null, ids));
                }

                continue;
            }

            if (name == "_lastUpdated")
            {
                if (modifierText is not null)
                {
                    Unsupported($"Modifier ':{modifierText}' is not supported on _lastUpdated");
                    continue;
                }

                var dates = SplitValues(value).Select(v => ParseDate(name, v)).ToList();
                if (dates.Count > 0)
                {
                    query.Criteria.Add(new SearchCriterion(name, null, SearchModifier.None, null, dates));
                }

                continue;
            }

            var parameter = registry.Find(type, name);
            if (parameter is null)
            {
                Unsupported($"Search parameter '{name}' is not supported for {type}");
                continue;
            }

            var (modifier, modifierType) = ParseModifier(parameter, modifierText, out var modifierError);
            if (modifierError is not null)
            {
                Unsupported(modifierError);
                continue;
            }

            if (modifier == SearchModifier.Missing)
            {
                var missing = value switch
                {
                    "true" => true,
                    "false" => false,
                    _ => throw new SearchException($"{name}:missing takes true or false, not '{value}'."),
                };
                query.Criteria.Add(new SearchCriterion(name, parameter, modifier, null, [new SearchValue { Missing = missing }]));
                continue;
            }

            var values = SplitValues(value).Select(v => ParseValue(parameter, modifier, modifierType, v)).ToList();
            if (values.Count == 0)
            {
                continue;
            }

            query.Criteria.Add(new SearchCriterion(name, parameter, modifier, modifierType, values));
        }

        return new Parsed(query, ignored);
    }

    private SortSpec ParseSort(string type, string value)
    {
        var keys = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (keys.Length != 1)
        {
            throw new SearchException("_sort supports one key: _lastUpdated, _id or a date parameter (prefix with '-' for descending).");
        }

        var key = keys[0];
        var descending = key.StartsWith('-');
        var name = descending ? key[1..] : key;
        if (name is "_lastUpdated" or "_id")
        {
            return new SortSpec(name, null, descending);
        }

        var parameter = registry.Find(type, name);
        if (parameter?.Kind != IndexKind.Date)
        {
            throw new SearchException($"Cannot sort {type} by '{name}': sorting supports _lastUpdated, _id and date parameters.");
        }

        return new SortSpec(name, parameter, descending);
    }

    private IncludeSpec? ParseInclude(string value, string kind)
    {
        var parts = value.Split(':');
        if (parts.Length is < 2 or > 3 || !registry.IsKnownType(parts[0]))
        {
            return null;
        }

        var parameter = registry.Find(parts[0], parts[1]);
        if (parameter?.Kind != IndexKind.Reference)
        {
            return null;
        }

        var target = parts.Length == 3 ? parts[2] : null;
        if (target is not null && !registry.IsKnownType(target))
        {
            throw new SearchException($"{kind}={value}: '{target}' is not a resource type.");
        }

        return new IncludeSpec(parts[0], parts[1], target);
    }

    private (SearchModifier, string?) ParseModifier(SearchParameterInfo parameter, string? text, out string? error)
    {
        error = null;
        if (text is null)
        {
            return (SearchModifier.None, null);
        }

        var kind = parameter.Kind;
        switch (text)
        {
            case "missing":
                return (SearchModifier.Missing, null);
            case "exact" when kind == IndexKind.String:
                return (SearchModifier.Exact, null);
            case "contains" when kind == IndexKind.String:
                return (SearchModifier.Contains, null);
            case "not" when kind == IndexKind.Token:
                return (SearchModifier.Not, null);
            case "below" when kind == IndexKind.Uri:
                return (SearchModifier.Below, null);
            case "above" when kind == IndexKind.Uri:
                return (SearchModifier.Above, null);
        }

        if (kind == IndexKind.Reference && registry.IsKnownType(text))
        {
            return (SearchModifier.Type, text);
        }

        error = $"Modifier ':{text}' is not supported on {parameter.ResourceType}.{parameter.Name} ({parameter.Type})";
        return (SearchModifier.None, null);
    }

    /// <summary>Splits on commas that are not escaped with a backslash; unescapes <c>\,</c>, <c>\|</c>, <c>\$</c>, <c>\\</c>.</summary>
    internal static List<string> SplitValues(string value)
    {
        var result = new List<string>();
        var current = new System.Text.StringBuilder();
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c == '\\' && i + 1 < value.Length)
            {
                current.Append('\\').Append(value[++i]);
            }
            else if (c == ',')
            {
                result.Add(current.ToString());
                current.Clear();
            }
            else
            {
                current.Append(c);
            }
        }

        result.Add(current.ToString());
        return result.Where(v => v.Length > 0).ToList();
    }

    private static string Unescape(string value) =>
        value.Contains('\\') ? value.Replace("\\,", ",").Replace("\\|", "|").Replace("\\$", "$").Replace("\\\\", "\\") : value;

    /// <summary>Splits at the first unescaped '|'.</summary>
    private static (string? Left, string Right, bool HasBar) SplitBar(string value)
    {
        for (var i = 0; i < value.Length; i++)
        {
            if (value[i] == '\\')
            {
                i++;
            }
            else if (value[i] == '|')
            {
                return (value[..i], value[(i + 1)..], true);
            }
        }

        return (null, value, false);
    }

    private SearchValue ParseValue(SearchParameterInfo parameter, SearchModifier modifier, string? modifierType, string raw)
    {
        switch (parameter.Kind)
        {
            case IndexKind.Token:
            {
                var (left, right, hasBar) = SplitBar(raw);
                return hasBar
                    ? new SearchValue { System = left is { Length: > 0 } ? Unescape(left) : null, SystemGiven = true, Code = right.Length > 0 ? Unescape(right) : null }
                    : new SearchValue { Code = Unescape(right) };
            }

            case IndexKind.String:
                return new SearchValue { Text = modifier == SearchModifier.Exact ? Unescape(raw) : IndexExtractor.Normalize(Unescape(raw)) };
            case IndexKind.Uri:
                return new SearchValue { Text = Unescape(raw) };
            case IndexKind.Reference:
                return ParseReference(parameter, modifierType, Unescape(raw));
            case IndexKind.Date:
                return ParseDate(parameter.Name, raw);
            case IndexKind.Number:
            {
                var (prefix, rest) = SplitPrefix(raw);
                var (number, low, high) = ParseNumber(parameter.Name, rest);
                return new SearchValue { Prefix = prefix, Number = number, NumberLow = low, NumberHigh = high };
            }

            case IndexKind.Quantity:
            {
                var (prefix, rest) = SplitPrefix(raw);
                var parts = rest.Split('|');
                var (number, low, high) = ParseNumber(parameter.Name, parts[0]);
                return new SearchValue
                {
                    Prefix = prefix, Number = number, NumberLow = low, NumberHigh = high,
                    System = parts.Length > 1 && parts[1].Length > 0 ? parts[1] : null,
                    Code = parts.Length > 2 && parts[2].Length > 0 ? parts[2] : null,
                };
            }

            default:
                throw new SearchException($"Search parameter {parameter.Name} cannot be searched.");
        }
    }

    private SearchValue ParseReference(SearchParameterInfo parameter, string? modifierType, string raw)
    {
        if (IndexExtractor.TryParseReference(raw, out var type, out var id))
        {
            if (modifierType is not null && modifierType != type)
            {
                throw new SearchException($"{parameter.Name}:{modifierType}={raw} names two different types.");
            }

            return new SearchValue { TargetType = type, TargetId = id };
        }

        if (raw.Contains("://", StringComparison.Ordinal))
        {
            // An absolute URL: match it as stored, or as Type/id when it ends with one.
            var segments = raw.TrimEnd('/').Split('/');
            if (segments.Length >= 2 && ModelInfo.IsKnownResource(segments[^2]))
            {
                return new SearchValue { TargetType = segments[^2], TargetId = segments[^1], Text = raw };
            }

            return new SearchValue { Text = raw };
        }

        if (raw.Contains('/'))
        {
            throw new SearchException($"'{raw}' is not a valid reference for {parameter.Name}: use Type/id, id or an absolute URL.");
        }

        var onlyTarget = modifierType ?? (parameter.Targets.Count == 1 ? parameter.Targets[0] : null);
        return new SearchValue { TargetType = onlyTarget, TargetId = raw };
    }

    private static (SearchPrefix, string) SplitPrefix(string raw)
    {
        if (raw.Length > 2 && char.IsLetter(raw[0]) && char.IsLetter(raw[1]))
        {
            SearchPrefix? prefix = raw[..2] switch
            {
                "eq" => SearchPrefix.Eq,
                "ne" => SearchPrefix.Ne,
                "gt" => SearchPrefix.Gt,
                "lt" => SearchPrefix.Lt,
                "ge" => SearchPrefix.Ge,
                "le" => SearchPrefix.Le,
                "sa" => SearchPrefix.Sa,
                "eb" => SearchPrefix.Eb,
                "ap" => SearchPrefix.Ap,
                _ => null,
            };
            if (prefix is { } p)
            {
                return (p, raw[2..]);
            }
        }

        return (SearchPrefix.Eq, raw);
    }

    private SearchValue ParseDate(string name, string raw)
    {
        var (prefix, rest) = SplitPrefix(raw);
        if (!FhirDateRange.TryParse(rest, out var low, out var high))
        {
            throw new SearchException($"'{raw}' is not a valid date for {name}: use [prefix]YYYY[-MM[-DD[Thh:mm[:ss[.fff]][Z|±hh:mm]]]], e.g. ge2020-01-01.");
        }

        // "ap": within 10% of the distance between now and the value, at least a day.
        var gap = prefix == SearchPrefix.Ap ? Math.Max(Math.Abs(FhirDateRange.ToMicros(_time.GetUtcNow()) - low) / 10, 86_400_000_000L) : 0;
        return new SearchValue { Prefix = prefix, Low = low, High = high, ApproximateGap = gap };
    }

    private static (decimal Value, decimal Low, decimal High) ParseNumber(string name, string text)
    {
        if (!decimal.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
        {
            throw new SearchException($"'{text}' is not a valid number for {name}.");
        }

        // Implicit precision: 100 means [99.5, 100.5); 1.50 means [1.495, 1.505).
        var dot = text.IndexOf('.');
        var decimals = dot < 0 ? 0 : text.Length - dot - 1;
        var half = 0.5m / (decimal)Math.Pow(10, decimals);
        return (value, value - half, value + half);
    }
}
