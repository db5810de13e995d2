namespace Helios.Storage.Search;

public enum SearchModifier
{
    None,
    Exact,
    Contains,
    Missing,
    Not,
    Below,
    Above,

    /// <summary>A reference restricted to a target type (<c>subject:Patient</c>).</summary>
    Type,

    Identifier,
}
