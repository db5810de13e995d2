namespace Helios.Storage.Sql;

/// <summary>Collects named parameters (<c>@p0</c>, <c>@p1</c>, ...) for a generated statement.</summary>
internal sealed class SqlParameters
{
    public List<KeyValuePair<string, object>> Values { get; } = [];

    public string Add(object value)
    {
        var name = "@p" + Values.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Values.Add(new(name, value));
        return name;
    }
}
