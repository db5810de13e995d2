using Helios.Storage;
using Helios.Storage.Indexing;
using Helios.Storage.Postgres;
using Helios.Storage.Search;
using Helios.Storage.Snapshots;
using Helios.Storage.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;

namespace Helios.Hosting;

public static class StorageHostingExtensions
{
    /// <summary>The connection string name of the PostgreSQL database (the AppHost resource name).</summary>
    public const string PostgresConnectionName = "helios-db";

    /// <summary>Reads <c>Helios:Topology</c> once and registers the matching resource store, its schema migrator and
    /// its export source. Returns the topology so the other registrations need not read it again.</summary>
    public static HeliosTopology AddHeliosStorage(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddOptions<HeliosOptions>().BindConfiguration(HeliosOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        var helios = ReadHeliosOptions(builder.Configuration);
        var topology = HeliosTopologyParser.Parse(helios.Topology);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton(_ => SearchParameterRegistry.Instance);
        builder.Services.AddSingleton<IndexExtractor>();
        builder.Services.AddSingleton<SearchQueryParser>();
        builder.Services.AddSingleton<InMemorySearchMatcher>();

        if (topology == HeliosTopology.PostgresS3)
        {
            if (string.IsNullOrWhiteSpace(builder.Configuration.GetConnectionString(PostgresConnectionName)))
            {
                throw new InvalidOperationException(
                    $"Helios:Topology is postgres-s3 but ConnectionStrings:{PostgresConnectionName} is not set. Set it (or run through Helios.AppHost), or use Helios:Topology=embedded.");
            }

            builder.AddNpgsqlDataSource(PostgresConnectionName);
            builder.Services.AddSingleton(sp => new PostgresResourceStore(
                sp.GetRequiredService<NpgsqlDataSource>(), sp.GetRequiredService<IndexExtractor>(), sp.GetRequiredService<TimeProvider>()));
            builder.Services.AddSingleton<IResourceStore>(sp => sp.GetRequiredService<PostgresResourceStore>());
            builder.Services.AddSingleton<ISchemaMigrator>(sp => sp.GetRequiredService<PostgresResourceStore>());
            builder.Services.AddSingleton<IExportSource>(sp => new PostgresExportSource(
                sp.GetRequiredService<PostgresResourceStore>(), sp.GetRequiredService<NpgsqlDataSource>()));
        }
        else
        {
            var path = helios.SqliteDatabasePath;
            builder.Services.AddSingleton(sp => new SqliteResourceStore(path, sp.GetRequiredService<IndexExtractor>(), sp.GetRequiredService<TimeProvider>()));
            builder.Services.AddSingleton<IResourceStore>(sp => sp.GetRequiredService<SqliteResourceStore>());
            builder.Services.AddSingleton<ISchemaMigrator>(sp => sp.GetRequiredService<SqliteResourceStore>());
            builder.Services.AddSingleton<IExportSource>(sp => new SqliteExportSource(sp.GetRequiredService<SqliteResourceStore>()));
        }

        return topology;
    }

    /// <summary>Creates or upgrades the resource store's schema only (the load verb needs nothing else).</summary>
    public static Task MigrateHeliosStorageAsync(this IServiceProvider services, CancellationToken cancellationToken) =>
        services.GetRequiredService<ISchemaMigrator>().MigrateAsync(cancellationToken);

    /// <summary>The <c>Helios</c> settings as configured (for decisions taken at registration time).</summary>
    internal static HeliosOptions ReadHeliosOptions(IConfiguration configuration) =>
        configuration.GetSection(HeliosOptions.SectionName).Get<HeliosOptions>() ?? new HeliosOptions();
}
