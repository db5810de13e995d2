using System.Diagnostics.CodeAnalysis;

namespace Helios.Api.Auth;

/// <summary>
/// One SMART clinical scope, v1 (<c>system/Observation.read</c>, <c>.write</c>, <c>.*</c>) or v2
/// (<c>system/Observation.rs</c>, any of <c>cruds</c> in that order), optionally with a v2 constraint
/// (<c>system/Observation.rs?category=laboratory</c>). <see cref="Type"/> is a resource type or <c>*</c>.
/// </summary>
public readonly record struct SmartScope(SmartContext Context, string Type, SmartPermission Permissions, string? Constraint)
{
    /// <summary>Parses one scope; false for anything that is not a SMART clinical scope (e.g. <c>openid</c>,
    /// <c>launch</c>, malformed text).</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out SmartScope? scope)
    {
        scope = null;
        if (string.IsNullOrEmpty(text) || text.Length > 1024)
        {
            return false;
        }

        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0)
        {
            return false;
        }

        SmartContext context;
        switch (text[..slash])
        {
            case "system": context = SmartContext.System; break;
            case "user": context = SmartContext.User; break;
            case "patient": context = SmartContext.Patient; break;
            default: return false;
        }

        var rest = text[(slash + 1)..];
        string? constraint = null;
        var question = rest.IndexOf('?', StringComparison.Ordinal);
        if (question >= 0)
        {
            constraint = rest[(question + 1)..];
            rest = rest[..question];
            if (constraint.Length == 0)
            {
                return false;
            }
        }

        var dot = rest.LastIndexOf('.');
        if (dot <= 0 || dot == rest.Length - 1)
        {
            return false;
        }

        var type = rest[..dot];
        if (type != "*" && !type.All(char.IsAsciiLetter))
        {
            return false;
        }

        var permissions = ParsePermissions(rest[(dot + 1)..], out var v1);
        if (permissions == SmartPermission.None || (v1 && constraint is not null))
        {
            // Constraints are a v2 feature.
            return false;
        }

        scope = new SmartScope(context, type, permissions, constraint);
        return true;
    }

    /// <summary>Every scope of a space-separated list that parses (others, such as <c>openid</c>, are skipped).</summary>
    public static IReadOnlyList<SmartScope> ParseList(string? scopes) =>
        (scopes ?? string.Empty).Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(s => TryParse(s, out var scope) ? scope : null)
            .OfType<SmartScope>()
            .ToList();

    /// <summary>Whether this scope grants all of <paramref name="wanted"/> on <paramref name="type"/> (ignoring
    /// context and constraint, which the caller weighs).</summary>
    public bool Covers(string type, SmartPermission wanted) => (Type == "*" || Type == type) && (Permissions & wanted) == wanted;

    public override string ToString()
    {
        var context = Context switch { SmartContext.System => "system", SmartContext.User => "user", _ => "patient" };
        var letters = string.Concat(
            (Permissions & SmartPermission.Create) != 0 ? "c" : string.Empty,
            (Permissions & SmartPermission.Read) != 0 ? "r" : string.Empty,
            (Permissions & SmartPermission.Update) != 0 ? "u" : string.Empty,
            (Permissions & SmartPermission.Delete) != 0 ? "d" : string.Empty,
            (Permissions & SmartPermission.Search) != 0 ? "s" : string.Empty);
        return $"{context}/{Type}.{letters}" + (Constraint is null ? string.Empty : "?" + Constraint);
    }

    private static SmartPermission ParsePermissions(string text, out bool v1)
    {
        v1 = true;
        switch (text)
        {
            case "read": return SmartPermission.Read | SmartPermission.Search;
            case "write": return SmartPermission.Create | SmartPermission.Update | SmartPermission.Delete;
            case "*": return SmartPermission.All;
        }

        v1 = false;
        // v2: a non-empty subsequence of "cruds", in that order, each letter once.
        const string order = "cruds";
        var permissions = SmartPermission.None;
        var at = 0;
        foreach (var letter in text)
        {
            var index = order.IndexOf(letter, at);
            if (index < 0)
            {
                return SmartPermission.None;
            }

            permissions |= (SmartPermission)(1 << index);
            at = index + 1;
        }

        return permissions;
    }
}
