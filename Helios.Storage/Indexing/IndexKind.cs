namespace Helios.Storage.Indexing;

/// <summary>The kinds of search index rows, one table each.</summary>
public enum IndexKind
{
    Token,
    String,
    Reference,
    Date,
    Number,
    Quantity,
    Uri,
}
