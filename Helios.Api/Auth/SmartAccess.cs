using System.Security.Claims;

namespace Helios.Api.Auth;

/// <summary>
/// What the caller's access token allows, from its <c>scope</c> claim. <c>system/</c> and <c>user/</c> scopes grant
/// what they say (Helios has no per-user rules beyond the scopes). Scopes Helios cannot honour are refused, never
/// widened: a <c>patient/</c> scope (backend services have no patient context) and a v2 scope with a
/// <c>?param=value</c> constraint grant nothing, and a refusal names them. When authorization is off every request is
/// allowed (<see cref="Unrestricted"/>).
/// </summary>
public sealed class SmartAccess
{
    private readonly IReadOnlyList<SmartScope> _usable;
    private readonly IReadOnlyList<SmartScope> _unusable;

    private SmartAccess(string clientId, IReadOnlyList<SmartScope> scopes, bool unrestricted)
    {
        ClientId = clientId;
        IsUnrestricted = unrestricted;
        _usable = scopes.Where(s => s.Context != SmartContext.Patient && s.Constraint is null).ToList();
        _unusable = scopes.Where(s => s.Context == SmartContext.Patient || s.Constraint is not null).ToList();
    }

    /// <summary>Authorization is off: everything is allowed, every client is "anonymous".</summary>
    public static SmartAccess Unrestricted { get; } = new("anonymous", [], unrestricted: true);

    public bool IsUnrestricted { get; }

    /// <summary>The client the token was issued to (owner of its exports).</summary>
    public string ClientId { get; }

    /// <summary>Handler parameter binding: the access attached by <c>UseSmartAccess</c>. A request that did not pass
    /// through it is refused rather than let through.</summary>
    public static ValueTask<SmartAccess?> BindAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return ValueTask.FromResult<SmartAccess?>(context.Features.Get<SmartAccess>()
            ?? throw new InvalidOperationException("SmartAccess was not attached to the request: UseSmartAccess must run before the endpoints."));
    }

    public static SmartAccess For(ClaimsPrincipal user)
    {
        ArgumentNullException.ThrowIfNull(user);
        var clientId = user.FindFirst("client_id")?.Value ?? user.FindFirst("azp")?.Value ?? user.FindFirst("sub")?.Value ?? "unknown-client";
        // One space-separated claim (RFC 9068), or one claim per scope (some servers split it).
        var scopes = SmartScope.ParseList(string.Join(' ', user.FindAll("scope").Concat(user.FindAll("scp")).Select(c => c.Value)));
        return new SmartAccess(clientId, scopes, unrestricted: false);
    }

    public bool Allows(string type, SmartPermission wanted) => IsUnrestricted || _usable.Any(s => s.Covers(type, wanted));

    /// <summary>Throws <see cref="SmartForbiddenException"/> (403) unless the token grants <paramref name="wanted"/>
    /// on <paramref name="type"/>.</summary>
    public void Demand(string type, SmartPermission wanted, string interaction)
    {
        if (Allows(type, wanted))
        {
            return;
        }

        var letters = new SmartScope(SmartContext.System, type, wanted, null).ToString();
        var unusable = _unusable.Where(s => s.Covers(type, wanted)).Select(s => s.ToString()).ToList();
        var why = unusable.Count > 0
            ? $" The token's scope {string.Join(", ", unusable)} would cover it, but Helios does not apply {(unusable.Any(u => u.Contains('?', StringComparison.Ordinal)) ? "scope constraints (?param=value)" : "patient-level scopes (a backend-services token has no patient context)")}; request an unconstrained system scope."
            : string.Empty;
        throw new SmartForbiddenException($"{interaction} of {type} needs the scope {letters} (or a wider one, e.g. system/{type}.{(wanted == SmartPermission.Read ? "read" : "*")}), which the access token does not grant.{why}");
    }
}
