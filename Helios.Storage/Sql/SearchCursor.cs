using System.Globalization;
using System.Text;
using Helios.Storage.Search;

namespace Helios.Storage.Sql;

/// <summary>Keyset cursor: the last row's sort key and seq, base64url-encoded.</summary>
internal static class SearchCursor
{
    public static string Encode(string? key, long seq)
    {
        var text = (key ?? string.Empty) + "\u001f" + seq.ToString(CultureInfo.InvariantCulture);
        return Convert.ToBase64String(Encoding.UTF8.GetBytes(text)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    public static (string? Key, long Seq)? Decode(string? cursor)
    {
        if (string.IsNullOrEmpty(cursor))
        {
            return null;
        }

        try
        {
            var b64 = cursor.Replace('-', '+').Replace('_', '/');
            b64 = b64.PadRight(b64.Length + ((4 - (b64.Length % 4)) % 4), '=');
            var text = Encoding.UTF8.GetString(Convert.FromBase64String(b64));
            var sep = text.LastIndexOf('\u001f');
            var seq = long.Parse(text[(sep + 1)..], CultureInfo.InvariantCulture);
            var key = text[..sep];
            return (key.Length == 0 ? null : key, seq);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentOutOfRangeException or OverflowException)
        {
            throw new SearchException("The paging cursor is invalid; start the search again from the first page.");
        }
    }
}
