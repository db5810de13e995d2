namespace Helios.Storage;

/// <summary>64-bit FNV-1a over two strings and a separator: stable across processes and releases (unlike
/// <see cref="string.GetHashCode()"/>).</summary>
internal static class Fnv1a
{
    public static ulong Hash(string first, char separator, string second)
    {
        var hash = 14695981039346656037UL;
        foreach (var c in first)
        {
            hash = (hash ^ c) * 1099511628211UL;
        }

        hash = (hash ^ separator) * 1099511628211UL;
        foreach (var c in second)
        {
            hash = (hash ^ c) * 1099511628211UL;
        }

        return hash;
    }
}
