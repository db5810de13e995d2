using Helios.Storage.Indexing;
using Hl7.Fhir.Model;

namespace Helios.Storage.Search;

/// <summary>
/// Evaluates a parsed search against a resource that is not stored yet (for example an entry of the transaction
/// being processed). Supports <c>_id</c> and token, string, uri and reference parameters with their modifiers;
/// a criterion on another kind never matches here.
/// </summary>
public sealed class InMemorySearchMatcher(IndexExtractor extractor)
{
    public bool Matches(SearchQuery query, Resource resource)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(resource);
        if (resource.TypeName != query.Type)
        {
            return false;
        }

        var entries = extractor.Extract(resource);
        return query.Criteria.All(c => Matches(c, resource, entries));
    }

    private static bool Matches(SearchCriterion criterion, Resource resource, IndexEntries entries)
    {
        if (criterion.Name == "_id")
        {
            return criterion.Values.Any(v => v.Code == resource.Id);
        }

        var parameter = criterion.Parameter;
        if (parameter is null)
        {
            return false;
        }

        if (criterion.Modifier == SearchModifier.Missing)
        {
            var present = parameter.Kind switch
            {
                IndexKind.Token => entries.Tokens.Any(t => parameter.IsAnsweredBy(t.Param)),
                IndexKind.String => entries.Strings.Any(t => parameter.IsAnsweredBy(t.Param)),
                IndexKind.Reference => entries.References.Any(t => parameter.IsAnsweredBy(t.Param)),
                IndexKind.Uri => entries.Uris.Any(t => parameter.IsAnsweredBy(t.Param)),
                IndexKind.Date => entries.Dates.Any(t => parameter.IsAnsweredBy(t.Param)),
                IndexKind.Number => entries.Numbers.Any(t => parameter.IsAnsweredBy(t.Param)),
                IndexKind.Quantity => entries.Quantities.Any(t => parameter.IsAnsweredBy(t.Param)),
                _ => false,
            };
            return criterion.Values[0].Missing != present;
        }

        return parameter.Kind switch
        {
            IndexKind.Token => criterion.Modifier == SearchModifier.Not
                ? !criterion.Values.Any(v => entries.Tokens.Any(t => parameter.IsAnsweredBy(t.Param) && TokenMatches(t, v)))
                : criterion.Values.Any(v => entries.Tokens.Any(t => parameter.IsAnsweredBy(t.Param) && TokenMatches(t, v))),
            IndexKind.String => criterion.Values.Any(v => entries.Strings.Any(s => parameter.IsAnsweredBy(s.Param) && criterion.Modifier switch
            {
                SearchModifier.Exact => s.Exact == v.Text,
                SearchModifier.Contains => s.Normalized.Contains(v.Text!, StringComparison.Ordinal),
                _ => s.Normalized.StartsWith(v.Text!, StringComparison.Ordinal),
            })),
            IndexKind.Uri => criterion.Values.Any(v => entries.Uris.Any(u => parameter.IsAnsweredBy(u.Param) && criterion.Modifier switch
            {
                SearchModifier.Below => u.Value.StartsWith(v.Text!, StringComparison.Ordinal),
                SearchModifier.Above => v.Text!.StartsWith(u.Value, StringComparison.Ordinal),
                _ => u.Value == v.Text,
            })),
            IndexKind.Reference => criterion.Values.Any(v => entries.References.Any(r => parameter.IsAnsweredBy(r.Param) &&
                ((v.TargetId is not null && r.TargetId == v.TargetId && (v.TargetType is null || r.TargetType == v.TargetType))
                 || (v.Text is not null && r.TargetType is null && r.TargetId == v.Text)))),
            _ => false,
        };
    }

    private static bool TokenMatches(TokenEntry token, SearchValue value)
    {
        if (!value.SystemGiven)
        {
            return token.Code == (value.Code ?? string.Empty);
        }

        var systemMatches = value.System is null ? token.System is null : token.System == value.System;
        return systemMatches && (value.Code is null || token.Code == value.Code);
    }
}
