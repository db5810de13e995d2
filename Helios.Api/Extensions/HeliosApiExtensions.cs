using Hangfire;
using Helios.Api.Auth;
using Helios.Api.Export;
using Helios.Api.Fhir;
using Helios.Api.Metadata;
using Helios.Hosting;
using Helios.Storage.Indexing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace Helios.Api.Extensions;

/// <summary>The Api's registrations and routes, so that <c>Program.cs</c> reads as the list of what the process is.</summary>
public static class HeliosApiExtensions
{
    /// <summary>Storage and export for the configured topology (with a Hangfire server in this process unless
    /// <c>Helios:Export:RunWorkers=false</c>), the FHIR services, the OperationOutcome exception handler and the
    /// request body limit.</summary>
    public static IHostApplicationBuilder AddHeliosApi(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var topology = builder.AddHeliosStorage();
        builder.AddHeliosExport(topology);
        builder.Services.AddSingleton<FhirRequestReader>();
        builder.Services.AddSingleton<ExportStatusCache>();
        builder.Services.AddSingleton<FhirService>();
        builder.Services.AddSingleton<BundleProcessor>();
        builder.Services.AddSingleton<CapabilityStatementBuilder>();
        builder.AddHeliosAuth();
        builder.Services.AddSingleton<SmartDiscovery>();
        builder.Services.AddExceptionHandler<OperationOutcomeExceptionHandler>();
        // UseExceptionHandler() insists on a fallback writer; the handler above answers every exception itself.
        builder.Services.AddProblemDetails();
        builder.Services.AddOptions<KestrelServerOptions>().Configure<IOptions<HeliosOptions>>((kestrel, helios) =>
            kestrel.Limits.MaxRequestBodySize = helios.Value.MaxRequestBodyBytes);
        return builder;
    }

    /// <summary>Migrates the schemas, warms the search parameter registry, and maps every route: health, Bulk Data,
    /// <c>/metadata</c>, SMART discovery, FHIR REST (behind authorization when it is on), and an OperationOutcome 404
    /// for anything else.</summary>
    public static async Task<WebApplication> MapHeliosApiAsync(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        await app.Services.MigrateHeliosAsync(app.Lifetime.ApplicationStopping);
        // Build the search parameter registry (SDK definitions, compartment definition) before taking traffic.
        app.Services.GetRequiredService<SearchParameterRegistry>();
        var auth = app.Services.GetRequiredService<HeliosAuthSettings>();
        app.LogAuthState(auth);
        app.UseExceptionHandler();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseSmartAccess(auth);
        app.MapDefaultEndpoints();
        app.MapMetadataApi();
        app.MapSmartConfigurationApi();

        // Everything else needs a valid access token when authorization is on; handlers check its scopes.
        var fhir = app.MapGroup(string.Empty);
        if (auth.Enabled)
        {
            fhir.RequireAuthorization();
        }

        fhir.MapExportApi();
        fhir.MapFhirApi();
        // The export jobs as Hangfire sees them (queues, runs, retries), read-only, behind the same token check. In the
        // composed stack it shows the workers' servers through the shared storage.
        fhir.MapHangfireDashboard("/hangfire", new DashboardOptions
        {
            DashboardTitle = "Helios export jobs",
            IsReadOnlyFunc = _ => true,
            Authorization = [],
            AppPath = null,
        });
        app.MapFallback(FhirApi.NoEndpoint);
        return app;
    }
}
