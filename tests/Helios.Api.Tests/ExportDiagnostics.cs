using System.Text;
using Hangfire;
using Microsoft.Extensions.DependencyInjection;

namespace Helios.Api.Tests;

/// <summary>What a stuck export looks like from the inside: its partitions' progress and Hangfire's queues.</summary>
internal static class ExportDiagnostics
{
    public static Func<string, Task<string>> For(HeliosApiFactory factory) => async jobId =>
    {
        var text = new StringBuilder();
        var jobs = factory.Services.GetRequiredService<IExportJobStore>();
        var job = await jobs.GetJobAsync(jobId, CancellationToken.None);
        var progress = await jobs.GetProgressAsync(jobId, CancellationToken.None);
        text.Append($"job {job?.Status} error={job?.Error}; partitions {progress.PartitionsDone}/{progress.Partitions}; ");
        var monitor = factory.Services.GetRequiredService<JobStorage>().GetMonitoringApi();
        text.Append($"hangfire enqueued={monitor.EnqueuedCount("helios-export")} processing={monitor.ProcessingCount()} failed={monitor.FailedCount()} servers={monitor.Servers().Count}; ");
        text.Append($"succeeded={monitor.SucceededListCount()}; ");
        foreach (var succeeded in monitor.SucceededJobs(0, 5))
        {
            text.Append($"succeeded: {succeeded.Value.Job?.Method.Name}({string.Join(",", succeeded.Value.Job?.Args ?? [])}); ");
        }

        foreach (var failed in monitor.FailedJobs(0, 5))
        {
            text.Append($"failed: {failed.Value.ExceptionMessage}; ");
        }

        foreach (var processing in monitor.ProcessingJobs(0, 10))
        {
            text.Append($"processing: {processing.Value.Job?.Args?.FirstOrDefault()} since {processing.Value.StartedAt:O} on {processing.Value.ServerId}; ");
        }

        return text.ToString();
    };
}
