namespace Helios.Export.Files;

/// <summary>The file store failed to write or publish a part (unreachable, refusing, or out of space). The message is
/// shown to the client when the export fails for it, so it says what failed without internal detail beyond the
/// store's own error text.</summary>
public sealed class ExportFileStoreException : Exception
{
    public ExportFileStoreException()
    {
    }

    public ExportFileStoreException(string message)
        : base(message)
    {
    }

    public ExportFileStoreException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
