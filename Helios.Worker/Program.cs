using Helios.Hosting;

// The worker host of the postgres-s3 topology: a Hangfire server on the export queue (plans and partitions of Bulk
// Data exports), the export supervisor, schema migrations for the shared PostgreSQL database, and /health.
var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
builder.AddHeliosWorker();

var app = builder.Build();
await app.Services.MigrateHeliosAsync(app.Lifetime.ApplicationStopping);
app.MapDefaultEndpoints();
await app.RunAsync();
