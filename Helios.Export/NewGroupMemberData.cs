namespace Helios.Export;

/// <summary>See <see cref="ExportOptions.GroupSinceNewMembers"/>.</summary>
public enum NewGroupMemberData
{
    /// <summary>Only what changed after <c>_since</c>, as for every other member.</summary>
    ChangesOnly,

    /// <summary>Everything in the new member's compartment, whatever its last update.</summary>
    AllData,
}
