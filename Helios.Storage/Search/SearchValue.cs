namespace Helios.Storage.Search;

/// <summary>One value of a criterion, already split by type.</summary>
public sealed record SearchValue
{
    public SearchPrefix Prefix { get; init; } = SearchPrefix.Eq;
    public string? System { get; init; }
    public string? Code { get; init; }
    public bool SystemGiven { get; init; }
    public string? Text { get; init; }
    public long Low { get; init; }
    public long High { get; init; }

    /// <summary>For a date with the <c>ap</c> prefix: how far (microseconds) either side of the value still matches,
    /// fixed when the query was parsed.</summary>
    public long ApproximateGap { get; init; }
    public decimal Number { get; init; }
    public decimal NumberLow { get; init; }
    public decimal NumberHigh { get; init; }
    public string? TargetType { get; init; }
    public string? TargetId { get; init; }
    public bool Missing { get; init; }
}
