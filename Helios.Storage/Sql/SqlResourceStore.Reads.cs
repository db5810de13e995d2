using System.Diagnostics;
using System.Globalization;
using Helios.Storage.Diagnostics;
using Helios.Storage.Indexing;
using Helios.Storage.Search;

namespace Helios.Storage.Sql;

/// <summary>Reads: read, vread, history and search (keyset paging, sort, total, includes).</summary>
public abstract partial class SqlResourceStore
{
    public async Task<StoredResource?> ReadAsync(string type, string id, CancellationToken cancellationToken)
    {
        var rows = await QueryAsync(
            $"SELECT {SearchSqlBuilder.Columns} FROM resources r WHERE r.res_type = @t AND r.res_id = @i AND r.next_seq IS NULL",
            [new("@t", type), new("@i", id)], cancellationToken);
        return rows.Count > 0 ? rows[0] : null;
    }

    public async Task<StoredResource?> ReadVersionAsync(string type, string id, int version, CancellationToken cancellationToken)
    {
        var rows = await QueryAsync(
            $"SELECT {SearchSqlBuilder.Columns} FROM resources r WHERE r.res_type = @t AND r.res_id = @i AND r.version = @v",
            [new("@t", type), new("@i", id), new("@v", version)], cancellationToken);
        return rows.Count > 0 ? rows[0] : null;
    }

    public async Task<IReadOnlyList<StoredResource>> HistoryAsync(HistoryQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        var p = new SqlParameters();
        var where = new List<string> { "1 = 1" };
        if (query.Type is not null)
        {
            where.Add("r.res_type = " + p.Add(query.Type));
        }

        if (query.Id is not null)
        {
            where.Add("r.res_id = " + p.Add(query.Id));
        }

        if (query.Since is { } since)
        {
            where.Add("r.last_updated >= " + p.Add(FhirDateRange.ToMicros(since)));
        }

        if (query.BeforeSeq is { } before)
        {
            where.Add("r.seq < " + p.Add(before));
        }

        var sql = $"SELECT {SearchSqlBuilder.Columns} FROM resources r WHERE {string.Join(" AND ", where)} ORDER BY r.seq DESC LIMIT {query.Count.ToString(CultureInfo.InvariantCulture)}";
        return await QueryAsync(sql, p.Values, cancellationToken);
    }

    public async Task<SearchResult> SearchAsync(SearchQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        using var activity = StorageTelemetry.ActivitySource.StartActivity("helios.storage.search");
        activity?.SetTag("helios.resource_type", query.Type);
        var started = Stopwatch.GetTimestamp();
        try
        {
            return await SearchCoreAsync(query, cancellationToken);
        }
        finally
        {
            StorageTelemetry.SearchDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, new KeyValuePair<string, object?>("resource_type", query.Type));
        }
    }

    private async Task<SearchResult> SearchCoreAsync(SearchQuery query, CancellationToken cancellationToken)
    {
        var p = new SqlParameters();
        var where = SearchSqlBuilder.BuildWhere(query, p);
        long? total = null;
        if (query.IncludeTotal)
        {
            total = await ScalarAsync($"SELECT COUNT(*) FROM resources r WHERE {where}", p.Values, cancellationToken);
        }

        if (query.CountOnly)
        {
            return new SearchResult([], [], total, null);
        }

        var sortKey = SearchSqlBuilder.SortKey(query, p);
        var descending = query.Sort?.Descending == true;
        var cmp = descending ? "<" : ">";
        var dir = descending ? "DESC" : "ASC";
        var cursor = SearchCursor.Decode(query.Cursor);
        string sql;
        if (sortKey is null)
        {
            var keyset = cursor is null ? string.Empty : $" AND r.seq {cmp} {p.Add(cursor.Value.Seq)}";
            sql = $"SELECT {SearchSqlBuilder.Columns}, NULL AS k FROM resources r WHERE {where}{keyset} ORDER BY r.seq {dir} LIMIT {query.Count + 1}";
        }
        else
        {
            var keyset = string.Empty;
            if (cursor is { Key: { } key })
            {
                object keyValue = query.Sort!.Name == "_id" ? key
                    : long.TryParse(key, NumberStyles.Integer, CultureInfo.InvariantCulture, out var k) ? k
                    : throw new SearchException("The paging cursor does not belong to this search; start again from the first page.");
                var kp = p.Add(keyValue);
                keyset = $" WHERE (q.k {cmp} {kp} OR (q.k = {kp} AND q.seq {cmp} {p.Add(cursor.Value.Seq)}))";
            }

            sql = $"SELECT * FROM (SELECT {SearchSqlBuilder.Columns}, {sortKey} AS k FROM resources r WHERE {where}) q{keyset} ORDER BY q.k {dir}, q.seq {dir} LIMIT {query.Count + 1}";
        }

        var keys = new List<string?>();
        var matches = await QueryAsync(sql, p.Values, cancellationToken, keys);
        string? next = null;
        if (matches.Count > query.Count)
        {
            matches.RemoveAt(matches.Count - 1);
            var last = matches[^1];
            next = SearchCursor.Encode(sortKey is null ? null : keys[matches.Count - 1], last.Seq);
        }

        var included = await IncludesAsync(query, matches, cancellationToken);
        return new SearchResult(matches, included, total, next);
    }

    private async Task<List<StoredResource>> IncludesAsync(SearchQuery query, List<StoredResource> matches, CancellationToken cancellationToken)
    {
        var result = new List<StoredResource>();
        if (matches.Count == 0 || (query.Includes.Count == 0 && query.RevIncludes.Count == 0))
        {
            return result;
        }

        var seen = new HashSet<long>(matches.Select(m => m.Seq));
        foreach (var include in query.Includes.Where(i => i.SourceType == query.Type))
        {
            var p = new SqlParameters();
            var seqs = string.Join(", ", matches.Select(m => p.Add(m.Seq)));
            var target = include.TargetType is null ? string.Empty : $" AND x.target_type = {p.Add(include.TargetType)}";
            var sql = $"SELECT {SearchSqlBuilder.Columns} FROM resources r JOIN idx_reference x ON x.target_type = r.res_type AND x.target_id = r.res_id " +
                      $"WHERE x.seq IN ({seqs}) AND {IncludeKey(include, "x.pid")}{target} AND r.next_seq IS NULL AND r.deleted = 0";
            foreach (var row in await QueryAsync(sql, p.Values, cancellationToken))
            {
                if (seen.Add(row.Seq))
                {
                    result.Add(row);
                }
            }
        }

        foreach (var include in query.RevIncludes)
        {
            if (include.TargetType is not null && include.TargetType != query.Type)
            {
                continue;
            }

            var p = new SqlParameters();
            var ids = string.Join(", ", matches.Select(m => p.Add(m.Id)));
            var sql = $"SELECT {SearchSqlBuilder.Columns} FROM resources r WHERE r.res_type = {p.Add(include.SourceType)} AND r.next_seq IS NULL AND r.deleted = 0 AND r.seq IN " +
                      $"(SELECT seq FROM idx_reference WHERE {IncludeKey(include, "pid")} AND target_type = {p.Add(query.Type)} AND target_id IN ({ids}))";
            foreach (var row in await QueryAsync(sql, p.Values, cancellationToken))
            {
                if (seen.Add(row.Seq))
                {
                    result.Add(row);
                }
            }
        }

        return result;
    }

    private string IncludeKey(IncludeSpec include, string column) =>
        extractor.Registry.Find(include.SourceType, include.Param) is { Kind: IndexKind.Reference } parameter
            ? SearchSqlBuilder.KeyCondition(parameter, column)
            : throw new ArgumentException($"{include.SourceType} has no reference search parameter '{include.Param}'.", nameof(include));}
