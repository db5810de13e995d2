using Helios.Hosting;

// The worker host of the postgres-s3 topology: a Hangfire server on the export queue (plans and partitions of Bulk
// Data exports), the export supervisor, schema migrations for the shared PostgreSQL database, and /health.
var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
var topology = builder.AddHeliosStorage();
if (topology == HeliosTopology.Embedded)
{
    throw new InvalidOperationException(
        "Helios.Worker runs only with Helios:Topology=postgres-s3: the embedded topology keeps its SQLite store and its workers inside Helios.Api.");
}

builder.AddHeliosExport(topology, workerHost: true);

var app = builder.Build();
await app.Services.MigrateHeliosStorageAsync(app.Lifetime.ApplicationStopping);
await app.Services.MigrateHeliosExportAsync(app.Lifetime.ApplicationStopping);
app.MapDefaultEndpoints();
await app.RunAsync();
