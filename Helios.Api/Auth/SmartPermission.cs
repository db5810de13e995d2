namespace Helios.Api.Auth;

/// <summary>The SMART v2 permissions (<c>c r u d s</c>); v1's <c>read</c> is <c>rs</c>, <c>write</c> <c>cud</c>,
/// <c>*</c> all five.</summary>
[Flags]
public enum SmartPermission
{
    None = 0,
    Create = 1,
    Read = 2,
    Update = 4,
    Delete = 8,
    Search = 16,
    All = Create | Read | Update | Delete | Search,
}
