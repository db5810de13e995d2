using Helios.Hosting;

// The worker host of the postgres-s3 topology. It owns schema migrations for the shared PostgreSQL database and
// exposes /health; the export job servers it hosts arrive with the Bulk Data export engine.
var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
var topology = builder.AddHeliosStorage();
if (topology == HeliosTopology.Embedded)
{
    throw new InvalidOperationException(
        "Helios.Worker runs only with Helios:Topology=postgres-s3: the embedded topology keeps its SQLite store and its workers inside Helios.Api.");
}

var app = builder.Build();
await app.Services.MigrateHeliosStorageAsync(app.Lifetime.ApplicationStopping);
app.MapDefaultEndpoints();
await app.RunAsync();
