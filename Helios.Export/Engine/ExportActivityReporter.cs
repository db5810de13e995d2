using Helios.Export.Diagnostics;
using Helios.Export.Jobs;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Helios.Export.Engine;

/// <summary>
/// Reads the deployment's export activity from the job store every few seconds and hands it to the
/// <see cref="ExportTelemetry"/> gauges (active exports, waiting and leased partitions). Runs in the Api only: the
/// figures are the whole deployment's, and reported by every process they would be counted once per process.
/// </summary>
public sealed partial class ExportActivityReporter(IExportJobStore jobs, TimeProvider timeProvider, ILogger<ExportActivityReporter> logger) : BackgroundService
{
    /// <summary>How often the store is read.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, timeProvider);
        do
        {
            await ReportAsync(stoppingToken);
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <summary>One reading (public so tests can drive it).</summary>
    public async Task ReportAsync(CancellationToken cancellationToken)
    {
        try
        {
            ExportTelemetry.ReportActivity(await jobs.GetActivityAsync(cancellationToken));
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The gauges keep their last reading; the health check reports the store.
            LogReadFailed(logger, ex);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not read the export activity for the gauges; trying again in a few seconds")]
    private static partial void LogReadFailed(ILogger logger, Exception exception);
}
