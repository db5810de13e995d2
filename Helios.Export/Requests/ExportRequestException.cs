namespace Helios.Export.Requests;

/// <summary>A kick-off that cannot be accepted; the message tells the client what to change.</summary>
public sealed class ExportRequestException(string message) : Exception(message);
