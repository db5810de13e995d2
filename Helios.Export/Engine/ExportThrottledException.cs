namespace Helios.Export.Engine;

/// <summary>A kick-off over the concurrency cap of its client or tenant (429); <see cref="RetryAfter"/> says when to
/// try again.</summary>
public sealed class ExportThrottledException(string message, TimeSpan retryAfter) : Exception(message)
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}
