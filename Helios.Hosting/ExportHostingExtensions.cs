using Hangfire;
using Hangfire.PostgreSql;
using Helios.Export;
using Helios.Export.Adapters.FileStores;
using Helios.Export.Adapters.JobStores;
using Helios.Export.Adapters.Scheduling;
using Helios.Export.Engine;
using Helios.Export.Files;
using Helios.Export.Jobs;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Helios.Hosting;

public static class ExportHostingExtensions
{
    private const string HangfireSchema = "hangfire";

    /// <summary>Advisory lock held while Hangfire's schema is installed or upgraded.</summary>
    private const long HangfireSchemaLockKey = 4748127590113;

    /// <summary>
    /// Registers the Bulk Data export engine for the topology: job state, file store, Hangfire storage and (when this
    /// process runs workers) a Hangfire server on the export queue, plus the supervisor. Invalid combinations fail
    /// here, at startup, with a message that says what to change.
    /// </summary>
    public static void AddHeliosExport(this IHostApplicationBuilder builder, HeliosTopology topology, bool workerHost = false)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddOptions<ExportOptions>().BindConfiguration(ExportOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<S3Options>().BindConfiguration(S3Options.SectionName).ValidateDataAnnotations().ValidateOnStart();
        var options = builder.Configuration.GetSection(ExportOptions.SectionName).Get<ExportOptions>() ?? new ExportOptions();
        var s3Options = builder.Configuration.GetSection(S3Options.SectionName).Get<S3Options>() ?? new S3Options();
        var helios = StorageHostingExtensions.ReadHeliosOptions(builder.Configuration);
        var runWorkers = workerHost || options.RunWorkers;
        var useS3 = ResolveFileStore(topology, options);
        Validate(topology, options, s3Options, runWorkers, useS3);
        if (useS3)
        {
            builder.Services.AddSingleton(sp => new S3ExportFileStore(sp.GetRequiredService<IOptions<S3Options>>().Value));
            builder.Services.AddSingleton<IExportFileStore>(sp => sp.GetRequiredService<S3ExportFileStore>());
        }
        else
        {
            var exportDirectory = options.LocalDirectory is { Length: > 0 } local ? Path.GetFullPath(local) : Path.Combine(helios.DataDirectoryPath, "exports");
            builder.Services.AddSingleton<IExportFileStore>(_ => new LocalExportFileStore(exportDirectory));
        }

        builder.Services.AddSingleton<ExportWorkerIdentity>();
        builder.Services.AddSingleton<IExportScheduler, HangfireExportScheduler>();
        builder.Services.AddSingleton<ExportRanges>();
        builder.Services.AddSingleton<ExportPlanner>();
        builder.Services.AddSingleton<ExportPartitionRunner>();
        builder.Services.AddTransient<ExportJobs>();
        builder.Services.AddSingleton<ExportKickoff>();
        builder.Services.AddSingleton(new ExportSupervisorSettings(ResetLeasesOnStartup: topology == HeliosTopology.Embedded));
        builder.Services.AddSingleton<ExportSupervisor>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ExportSupervisor>());
        if (!workerHost)
        {
            builder.Services.AddHostedService<ExportActivityReporter>();
        }

        if (topology == HeliosTopology.PostgresS3)
        {
            var connectionString = builder.Configuration.GetConnectionString(StorageHostingExtensions.PostgresConnectionName)!;
            builder.Services.AddSingleton<IExportJobStore>(sp => new PostgresExportJobStore(sp.GetRequiredService<NpgsqlDataSource>(), sp.GetRequiredService<TimeProvider>()));
            var storageOptions = new PostgreSqlStorageOptions
            {
                SchemaName = HangfireSchema,
                // MigrateHeliosAsync installs the schema under an advisory lock: two processes starting at once would
                // otherwise race in Hangfire's own installer (one of them logs an error).
                PrepareSchemaIfNecessary = false,
                QueuePollInterval = TimeSpan.FromMilliseconds(250),
            };
            AddHangfire(builder.Services, _ => new PostgreSqlStorage(new Hangfire.PostgreSql.Factories.NpgsqlConnectionFactory(connectionString, storageOptions), storageOptions));
        }
        else
        {
            builder.Services.AddSingleton<IExportJobStore>(sp => new SqliteExportJobStore(helios.SqliteDatabasePath, sp.GetRequiredService<TimeProvider>()));
            // Hangfire only transports work here: the SQLite job tables are the durable truth, and after a restart the
            // supervisor re-enqueues whatever was pending (see docs/adr/0005).
            AddHangfire(builder.Services, _ => new Hangfire.InMemory.InMemoryStorage());
        }

        // Readiness: what this process depends on (/health; /alive stays the liveness check).
        var checks = builder.Services.AddHealthChecks()
            .AddCheck<ExportStoreHealthCheck>("export-store", timeout: TimeSpan.FromSeconds(10))
            .AddCheck<ExportFileStoreHealthCheck>("export-files", timeout: TimeSpan.FromSeconds(10));
        if (runWorkers)
        {
            checks.AddCheck<HangfireServerHealthCheck>("hangfire-server", timeout: TimeSpan.FromSeconds(10));
        }

        if (runWorkers)
        {
            builder.Services.AddHangfireServer((sp, server) =>
            {
                var settings = sp.GetRequiredService<IOptions<ExportOptions>>().Value;
                server.Queues = [HangfireExportScheduler.Queue];
                server.WorkerCount = settings.WorkerCount > 0 ? settings.WorkerCount : Math.Max(2, Environment.ProcessorCount);
                server.ServerName = sp.GetRequiredService<ExportWorkerIdentity>().Id;
                server.ShutdownTimeout = TimeSpan.FromSeconds(10);
            });
        }
    }

    /// <summary>
    /// Registers this container's own JobStorage and JobActivator. Hangfire's AddHangfire would otherwise resolve both
    /// from the process-wide <c>JobStorage.Current</c> / <c>JobActivator.Current</c>, so with two hosts in one process
    /// (tests, or an Api beside a worker) jobs could be enqueued into, or activated from, the other host.
    /// </summary>
    private static void AddHangfire(IServiceCollection services, Func<IServiceProvider, JobStorage> storage)
    {
        services.AddSingleton(storage);
        services.AddSingleton<JobActivator>(sp => new Hangfire.AspNetCore.AspNetCoreJobActivator(sp.GetRequiredService<IServiceScopeFactory>()));
        services.AddHangfire(configuration => configuration
            .SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
            .UseSimpleAssemblyNameTypeSerializer()
            .UseRecommendedSerializerSettings());
    }

    /// <summary>Creates or upgrades the resource store's schema, the export tables and (when configured to) the S3
    /// bucket. Safe when several processes start at once.</summary>
    public static async Task MigrateHeliosAsync(this IServiceProvider services, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(services);
        await services.GetRequiredService<Helios.Storage.ISchemaMigrator>().MigrateAsync(cancellationToken);
        await services.GetRequiredService<IExportJobStore>().MigrateAsync(cancellationToken);
        if (services.GetService<NpgsqlDataSource>() is { } dataSource)
        {
            // This host's Hangfire configuration first: it points Hangfire's static log provider at this host's
            // logger factory, which the installer's type initializer takes its logger from (with two hosts in one
            // process, tests, the provider could still be a disposed host's).
            _ = services.GetService<IGlobalConfiguration>();
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            await using (var lockCommand = new NpgsqlCommand($"SELECT pg_advisory_lock({HangfireSchemaLockKey})", connection))
            {
                await lockCommand.ExecuteNonQueryAsync(cancellationToken);
            }

            try
            {
                PostgreSqlObjectsInstaller.Install(connection, HangfireSchema);
            }
            finally
            {
                await using var unlock = new NpgsqlCommand($"SELECT pg_advisory_unlock({HangfireSchemaLockKey})", connection);
                await unlock.ExecuteNonQueryAsync(CancellationToken.None);
            }
        }
        if (services.GetService<S3ExportFileStore>() is { } s3 && services.GetRequiredService<IOptions<S3Options>>().Value.CreateBucket)
        {
            await s3.EnsureBucketAsync(cancellationToken);
        }
    }

    private static bool ResolveFileStore(HeliosTopology topology, ExportOptions options) => options.FileStore.Trim().ToLowerInvariant() switch
    {
        "" or "auto" => topology == HeliosTopology.PostgresS3,
        "local" => false,
        "s3" => true,
        _ => throw new InvalidOperationException($"Helios:Export:FileStore '{options.FileStore}' is not valid. Allowed values: auto, local, s3."),
    };

    private static void Validate(HeliosTopology topology, ExportOptions options, S3Options s3, bool runWorkers, bool useS3)
    {
        if (topology == HeliosTopology.Embedded && !runWorkers)
        {
            throw new InvalidOperationException(
                "Helios:Export:RunWorkers=false is not valid with Helios:Topology=embedded: the Api is the only process, so no export would ever run. Remove the setting, or use postgres-s3 with Helios.Worker processes.");
        }

        if (!useS3)
        {
            if (options.DirectDownloadUrls)
            {
                throw new InvalidOperationException(
                    "Helios:Export:DirectDownloadUrls=true needs presigned URLs, which only the S3 file store has. Remove the setting, or set Helios:Export:FileStore=s3 (the postgres-s3 default).");
            }

            return;
        }

        var missing = new List<string>();
        if (string.IsNullOrWhiteSpace(s3.ServiceUrl))
        {
            missing.Add("Helios:Export:S3:ServiceUrl");
        }

        if (string.IsNullOrWhiteSpace(s3.AccessKey))
        {
            missing.Add("Helios:Export:S3:AccessKey");
        }

        if (string.IsNullOrWhiteSpace(s3.SecretKey))
        {
            missing.Add("Helios:Export:S3:SecretKey");
        }

        if (missing.Count > 0)
        {
            throw new InvalidOperationException(
                $"Export files go to S3 (Helios:Topology=postgres-s3 or Helios:Export:FileStore=s3), but {string.Join(", ", missing)} {(missing.Count == 1 ? "is" : "are")} not set. Set them (Helios.AppHost does), or set Helios:Export:FileStore=local with a directory every process shares.");
        }

        if (!Uri.TryCreate(s3.ServiceUrl, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
        {
            throw new InvalidOperationException($"Helios:Export:S3:ServiceUrl '{s3.ServiceUrl}' is not an absolute http(s) URL.");
        }
    }
}
