namespace Helios.Api.Auth;

/// <summary>Whose access a SMART scope describes: <c>system/</c>, <c>user/</c> or <c>patient/</c>.</summary>
public enum SmartContext
{
    System,
    User,
    Patient,
}
