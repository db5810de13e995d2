namespace Helios.Storage.Indexing;

/// <summary>A token: <c>system|code</c> (either part may be absent).</summary>
public readonly record struct TokenEntry(string Param, string? System, string? Code);
