using Hangfire;
using Helios.Export.Engine;
using Helios.Export.Files;
using Helios.Export.Jobs;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Helios.Hosting;

/// <summary>The export store (job tables in the database) answers a query.</summary>
public sealed class ExportStoreHealthCheck(IExportJobStore jobs) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var activity = await jobs.GetActivityAsync(cancellationToken);
            return HealthCheckResult.Healthy($"{activity.ActiveJobs} active exports, {activity.LeasedPartitions} partitions leased");
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, "The export job store (database) cannot be queried: " + ex.Message, ex);
        }
    }
}

/// <summary>The export file store (bucket or directory) is reachable.</summary>
public sealed class ExportFileStoreHealthCheck(IExportFileStore files) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await files.CheckAvailableAsync(cancellationToken);
            return HealthCheckResult.Healthy();
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, "The export file store cannot be reached: " + ex.Message, ex);
        }
    }
}

/// <summary>This process's Hangfire server is registered in the job storage and its heartbeat is recent.</summary>
public sealed class HangfireServerHealthCheck(JobStorage storage, ExportWorkerIdentity identity, TimeProvider timeProvider) : IHealthCheck
{
    /// <summary>Hangfire beats every 30 s; two missed beats make the server unhealthy.</summary>
    private static readonly TimeSpan s_maxSilence = TimeSpan.FromSeconds(75);

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var server = storage.GetMonitoringApi().Servers()
                .FirstOrDefault(s => s.Name.StartsWith(identity.Id, StringComparison.OrdinalIgnoreCase));
            if (server is null)
            {
                return Task.FromResult(new HealthCheckResult(context.Registration.FailureStatus, $"The Hangfire server {identity.Id} has not registered (yet)."));
            }

            var silence = timeProvider.GetUtcNow().UtcDateTime - (server.Heartbeat ?? server.StartedAt);
            return Task.FromResult(silence <= s_maxSilence
                ? HealthCheckResult.Healthy($"Hangfire server on queues {string.Join(", ", server.Queues)} with {server.WorkersCount} workers")
                : new HealthCheckResult(context.Registration.FailureStatus, $"The Hangfire server's last heartbeat was {silence.TotalSeconds:F0} s ago."));
        }
        catch (Exception ex)
        {
            return Task.FromResult(new HealthCheckResult(context.Registration.FailureStatus, "The Hangfire storage cannot be read: " + ex.Message, ex));
        }
    }
}
