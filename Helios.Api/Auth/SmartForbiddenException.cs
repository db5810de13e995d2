namespace Helios.Api.Auth;

/// <summary>The access token is valid but its scopes do not cover the request (403).</summary>
public sealed class SmartForbiddenException(string message) : Exception(message);
