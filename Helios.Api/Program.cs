using Helios.Api.Cli;
using Helios.Api.Extensions;

if (CommandLine.IsCommand(args))
{
    return await CommandLine.RunAsync(args);
}

var builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
builder.AddHeliosApi();

var app = builder.Build();
await app.MapHeliosApiAsync();
await app.RunAsync();
return 0;
