using Helios.Api.Cli;
using Helios.Api.Export;
using Helios.Api.Fhir;
using Helios.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

if (CommandLine.IsCommand(args))
{
    return await CommandLine.RunAsync(args);
}

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
var topology = builder.AddHeliosStorage();
builder.AddHeliosExport(topology);
builder.Services.AddSingleton<FhirService>();
builder.Services.AddSingleton<BundleProcessor>();
builder.Services.AddSingleton<CapabilityStatementBuilder>();
builder.Services.AddOptions<KestrelServerOptions>().Configure<IOptions<HeliosOptions>>((kestrel, helios) =>
    kestrel.Limits.MaxRequestBodySize = helios.Value.MaxRequestBodyBytes);

var app = builder.Build();
await app.Services.MigrateHeliosStorageAsync(app.Lifetime.ApplicationStopping);
await app.Services.MigrateHeliosExportAsync(app.Lifetime.ApplicationStopping);

// Build the search parameter registry (SDK definitions, compartment definition) before taking traffic.
app.Services.GetRequiredService<Helios.Storage.Indexing.SearchParameterRegistry>();

app.UseMiddleware<FhirExceptionMiddleware>();
app.MapDefaultEndpoints();
app.MapExportApi();
app.MapFhirApi();
app.MapFallback(context => throw new FhirOperationException(404, $"No FHIR endpoint at {context.Request.Method} {context.Request.Path}; see /metadata.", Hl7.Fhir.Model.OperationOutcome.IssueType.NotFound));

await app.RunAsync();
return 0;
