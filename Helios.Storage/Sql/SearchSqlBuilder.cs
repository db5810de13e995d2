using System.Globalization;
using System.Text;
using Helios.Storage.Indexing;
using Helios.Storage.Search;

namespace Helios.Storage.Sql;

/// <summary>
/// Builds the SQL of a search: one statement over <c>resources</c> with one <c>seq IN (index lookup)</c> per
/// criterion, keyset-paged (never OFFSET). The SQL is the same for SQLite and PostgreSQL.
/// </summary>
internal static class SearchSqlBuilder
{
    public const string Columns = "r.seq, r.res_type, r.res_id, r.version, r.last_updated, r.deleted, r.json";

    public static string TableFor(IndexKind kind) => kind switch
    {
        IndexKind.Token => "idx_token",
        IndexKind.String => "idx_string",
        IndexKind.Reference => "idx_reference",
        IndexKind.Date => "idx_date",
        IndexKind.Number => "idx_number",
        IndexKind.Quantity => "idx_quantity",
        IndexKind.Uri => "idx_uri",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>The WHERE clause (without keyset) shared by the page query and the count.</summary>
    public static string BuildWhere(SearchQuery query, SqlParameters p)
    {
        var sb = new StringBuilder();
        var type = p.Add(query.Type);
        sb.Append("r.res_type = ").Append(type).Append(" AND r.next_seq IS NULL AND r.deleted = 0");
        if (query.CompartmentPatientId is { } patient)
        {
            if (query.Type == "Patient")
            {
                sb.Append(" AND r.res_id = ").Append(p.Add(patient));
            }
            else
            {
                sb.Append(" AND r.seq IN (SELECT seq FROM compartment WHERE patient_id = ").Append(p.Add(patient))
                  .Append(" AND res_type = ").Append(type).Append(')');
            }
        }

        foreach (var criterion in query.Criteria)
        {
            sb.Append(" AND ");
            AppendCriterion(sb, criterion, p);
        }

        return sb.ToString();
    }

    /// <summary>The criteria of a query alone, AND-ed (<c>1 = 1</c> when it has none): the conditions on one version
    /// row <c>r</c>, whichever snapshot it belongs to (index rows are kept per version).</summary>
    public static string BuildCriteria(SearchQuery query, SqlParameters p, string? seqBounds = null)
    {
        if (query.Criteria.Count == 0)
        {
            return "1 = 1";
        }

        var sb = new StringBuilder();
        foreach (var criterion in query.Criteria)
        {
            sb.Append(sb.Length == 0 ? "(" : " AND ");
            AppendCriterion(sb, criterion, p, seqBounds);
        }

        return sb.Append(')').ToString();
    }

    /// <param name="seqBounds">Extra conditions on the index rows' <c>seq</c> (a key range the outer query is bounded
    /// by as well), or null.</param>
    private static void AppendCriterion(StringBuilder sb, SearchCriterion criterion, SqlParameters p, string? seqBounds = null)
    {
        if (criterion.Name == "_id")
        {
            sb.Append("r.res_id IN (").AppendJoin(", ", criterion.Values.Select(v => p.Add(v.Code!))).Append(')');
            return;
        }

        if (criterion.Name == "_lastUpdated")
        {
            sb.Append('(').AppendJoin(" OR ", criterion.Values.Select(v => DateCondition(v, "r.last_updated", "r.last_updated", p))).Append(')');
            return;
        }

        var parameter = criterion.Parameter!;
        var table = TableFor(parameter.Kind);
        var lookup = $"SELECT seq FROM {table} WHERE {KeyCondition(parameter, "pid")}{seqBounds}";
        if (criterion.Modifier == SearchModifier.Missing)
        {
            sb.Append(criterion.Values[0].Missing ? "r.seq NOT IN (" : "r.seq IN (").Append(lookup).Append(')');
            return;
        }

        var conditions = criterion.Values.Select(v => ValueCondition(parameter.Kind, criterion.Modifier, v, p)).ToList();
        var negate = criterion.Modifier == SearchModifier.Not;
        sb.Append(negate ? "r.seq NOT IN (" : "r.seq IN (").Append(lookup).Append(" AND (").AppendJoin(" OR ", conditions).Append("))");
    }

    /// <summary>The rows of a parameter: its own key, or its sources' keys for a derived parameter. Keys are
    /// integers computed by the registry, written inline.</summary>
    public static string KeyCondition(SearchParameterInfo parameter, string column) => parameter.Sources.Count == 1
        ? string.Create(CultureInfo.InvariantCulture, $"{column} = {parameter.Sources[0].Key}")
        : $"{column} IN ({string.Join(", ", parameter.Sources.Select(s => s.Key.ToString(CultureInfo.InvariantCulture)))})";

    private static string ValueCondition(IndexKind kind, SearchModifier modifier, SearchValue v, SqlParameters p)
    {
        switch (kind)
        {
            case IndexKind.Token:
                if (v.SystemGiven)
                {
                    var system = v.System is null ? "system IS NULL" : $"system = {p.Add(v.System)}";
                    return v.Code is null ? system : $"({system} AND code = {p.Add(v.Code)})";
                }

                return $"code = {p.Add(v.Code ?? string.Empty)}";
            case IndexKind.String:
                return modifier switch
                {
                    SearchModifier.Exact => $"exact = {p.Add(v.Text!)}",
                    SearchModifier.Contains => $"normalized LIKE {p.Add("%" + EscapeLike(v.Text!) + "%")} ESCAPE '\\'",
                    _ => $"normalized LIKE {p.Add(EscapeLike(v.Text!) + "%")} ESCAPE '\\'",
                };
            case IndexKind.Uri:
                return modifier switch
                {
                    SearchModifier.Below => $"value LIKE {p.Add(EscapeLike(v.Text!) + "%")} ESCAPE '\\'",
                    SearchModifier.Above => $"{p.Add(v.Text!)} LIKE (value || '%')",
                    _ => $"value = {p.Add(v.Text!)}",
                };
            case IndexKind.Reference:
                var parts = new List<string>();
                if (v.TargetId is not null)
                {
                    var local = v.TargetType is null
                        ? $"target_id = {p.Add(v.TargetId)}"
                        : $"(target_type = {p.Add(v.TargetType)} AND target_id = {p.Add(v.TargetId)})";
                    parts.Add(local);
                }

                if (v.Text is not null)
                {
                    parts.Add($"(target_type IS NULL AND target_id = {p.Add(v.Text)})");
                }

                return "(" + string.Join(" OR ", parts) + ")";
            case IndexKind.Date:
                return DateCondition(v, "low", "high", p);
            case IndexKind.Number:
                return NumberCondition(v, p);
            case IndexKind.Quantity:
                var sb = new StringBuilder("(").Append(NumberCondition(v, p));
                if (v.System is not null)
                {
                    sb.Append(" AND system = ").Append(p.Add(v.System));
                }

                if (v.Code is not null)
                {
                    sb.Append(" AND code = ").Append(p.Add(v.Code));
                }

                return sb.Append(')').ToString();
            default:
                throw new ArgumentOutOfRangeException(nameof(kind));
        }
    }

    /// <summary>Date prefixes on ranges: the row holds [low, high], the value means [lo, hi].</summary>
    private static string DateCondition(SearchValue v, string lowColumn, string highColumn, SqlParameters p)
    {
        string Lo() => p.Add(v.Low);
        string Hi() => p.Add(v.High);
        return v.Prefix switch
        {
            SearchPrefix.Eq => $"({lowColumn} >= {Lo()} AND {highColumn} <= {Hi()})",
            SearchPrefix.Ne => $"NOT ({lowColumn} >= {Lo()} AND {highColumn} <= {Hi()})",
            SearchPrefix.Gt => $"{highColumn} > {Hi()}",
            SearchPrefix.Lt => $"{lowColumn} < {Lo()}",
            SearchPrefix.Ge => $"{highColumn} >= {Lo()}",
            SearchPrefix.Le => $"{lowColumn} <= {Hi()}",
            SearchPrefix.Sa => $"{lowColumn} > {Hi()}",
            SearchPrefix.Eb => $"{highColumn} < {Lo()}",
            SearchPrefix.Ap => ApproxDate(v, lowColumn, highColumn, p),
            _ => throw new ArgumentOutOfRangeException(nameof(v)),
        };
    }

    private static string ApproxDate(SearchValue v, string lowColumn, string highColumn, SqlParameters p)
    {
        // The parser set the gap from its clock ("ap": 10% of the distance to now, at least a day).
        return $"({lowColumn} <= {p.Add(v.High + v.ApproximateGap)} AND {highColumn} >= {p.Add(v.Low - v.ApproximateGap)})";
    }

    private static string NumberCondition(SearchValue v, SqlParameters p)
    {
        string D(decimal d) => p.Add((double)d);
        return v.Prefix switch
        {
            SearchPrefix.Eq => $"(value >= {D(v.NumberLow)} AND value < {D(v.NumberHigh)})",
            SearchPrefix.Ne => $"(value < {D(v.NumberLow)} OR value >= {D(v.NumberHigh)})",
            SearchPrefix.Gt or SearchPrefix.Sa => $"value > {D(v.Number)}",
            SearchPrefix.Lt or SearchPrefix.Eb => $"value < {D(v.Number)}",
            SearchPrefix.Ge => $"value >= {D(v.Number)}",
            SearchPrefix.Le => $"value <= {D(v.Number)}",
            SearchPrefix.Ap => $"(value >= {D(v.Number - (Math.Abs(v.Number) / 10))} AND value <= {D(v.Number + (Math.Abs(v.Number) / 10))})",
            _ => throw new ArgumentOutOfRangeException(nameof(v)),
        };
    }

    private static string EscapeLike(string text) =>
        text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("%", "\\%", StringComparison.Ordinal).Replace("_", "\\_", StringComparison.Ordinal);

    /// <summary>The sort key expression, or null to sort by <c>seq</c> alone (which is also <c>_lastUpdated</c> order).</summary>
    public static string? SortKey(SearchQuery query, SqlParameters p)
    {
        var sort = query.Sort;
        if (sort is null || sort.Name == "_lastUpdated")
        {
            return null;
        }

        if (sort.Name == "_id")
        {
            return "r.res_id";
        }

        var aggregate = sort.Descending ? "MAX(high)" : "MIN(low)";
        var missing = (sort.Descending ? FhirDateRange.MinValue : FhirDateRange.MaxValue).ToString(CultureInfo.InvariantCulture);
        return $"COALESCE((SELECT {aggregate} FROM idx_date d WHERE d.seq = r.seq AND {KeyCondition(sort.DateParameter!, "d.pid")}), {missing})";
    }
}
