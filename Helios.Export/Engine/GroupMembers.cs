using System.Text.Json;
using Helios.Storage.Indexing;

namespace Helios.Export.Engine;

/// <summary>Reads Group.member from stored JSON.</summary>
internal static class GroupMembers
{
    public static IEnumerable<(string Type, string Id)> Active(string json, DateTimeOffset at, string baseUrl)
    {
        using var document = JsonDocument.Parse(json);
        if (!document.RootElement.TryGetProperty("member", out var members) || members.ValueKind != JsonValueKind.Array)
        {
            return [];
        }

        var atMicros = FhirDateRange.ToMicros(at);
        var result = new List<(string, string)>();
        foreach (var member in members.EnumerateArray())
        {
            if (member.TryGetProperty("inactive", out var inactive) && inactive.ValueKind == JsonValueKind.True)
            {
                continue;
            }

            if (member.TryGetProperty("period", out var period))
            {
                if (period.TryGetProperty("start", out var start) && FhirDateRange.TryParse(start.GetString(), out var startLow, out _) && startLow > atMicros)
                {
                    continue;
                }

                if (period.TryGetProperty("end", out var end) && FhirDateRange.TryParse(end.GetString(), out _, out var endHigh) && endHigh < atMicros)
                {
                    continue;
                }
            }

            if (member.TryGetProperty("entity", out var entity) && entity.TryGetProperty("reference", out var reference) &&
                reference.GetString() is { } text && Parse(text, baseUrl) is { } target)
            {
                result.Add(target);
            }
        }

        return result;
    }

    private static (string, string)? Parse(string reference, string baseUrl)
    {
        var text = reference;
        var trimmedBase = baseUrl.TrimEnd('/') + "/";
        if (text.StartsWith(trimmedBase, StringComparison.Ordinal))
        {
            text = text[trimmedBase.Length..];
        }
        else if (text.Contains("://", StringComparison.Ordinal))
        {
            return null;
        }

        var parts = text.Split('/');
        return parts.Length is 2 or 4 && parts[0].Length > 0 && parts[1].Length > 0 ? (parts[0], parts[1]) : null;
    }
}
