// The Helios application graph. This first composition runs the Api in the embedded topology (SQLite under the
// Api's data directory); PostgreSQL, the object store, the workers and the auth server join with the export engine.
var builder = DistributedApplication.CreateBuilder(args);

var dataDirectory = builder.Configuration["Helios:DataDirectory"] is { Length: > 0 } configured
    ? configured
    : Path.Combine(builder.AppHostDirectory, "..", "data", "apphost");

builder.AddProject<Projects.Helios_Api>("helios-api")
    .WithEnvironment("Helios__Topology", "embedded")
    .WithEnvironment("Helios__DataDirectory", Path.GetFullPath(dataDirectory))
    .WithHttpHealthCheck("/health");

builder.Build().Run();
