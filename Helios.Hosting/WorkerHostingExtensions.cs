using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Helios.Hosting;

public static class WorkerHostingExtensions
{
    /// <summary>Storage and the export engine with a Hangfire server, for a <c>Helios.Worker</c> process. The embedded
    /// topology is refused: its SQLite store and its workers belong to the one Api process.</summary>
    public static IHostApplicationBuilder AddHeliosWorker(this IHostApplicationBuilder builder)
    {
        var topology = builder.AddHeliosStorage();
        if (topology == HeliosTopology.Embedded)
        {
            throw new InvalidOperationException(
                "Helios.Worker runs only with Helios:Topology=postgres-s3: the embedded topology keeps its SQLite store and its workers inside Helios.Api.");
        }

        // A bad Helios:Worker:Nice stops the worker here, at build time. The hosted service is registered first, so
        // the threads the Hangfire server starts descend from lowered ones.
        WorkerCpuPriority.ReadNice(builder.Configuration);
        builder.Services.AddHostedService<WorkerCpuPriority>();
        builder.AddHeliosExport(topology, workerHost: true);
        return builder;
    }
}
