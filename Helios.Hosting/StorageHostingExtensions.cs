using Helios.Storage;
using Helios.Storage.Indexing;
using Helios.Storage.Postgres;
using Helios.Storage.Search;
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

    /// <summary>Reads <c>Helios:Topology</c> once and registers the matching resource store.</summary>
    public static HeliosTopology AddHeliosStorage(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<HeliosOptions>().BindConfiguration(HeliosOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        var topology = HeliosTopologyParser.Parse(builder.Configuration[$"{HeliosOptions.SectionName}:Topology"]);
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
            builder.Services.AddSingleton<PostgresResourceStore>(sp => new PostgresResourceStore(
                sp.GetRequiredService<NpgsqlDataSource>(), sp.GetRequiredService<IndexExtractor>(), sp.GetRequiredService<TimeProvider>()));
            builder.Services.AddSingleton<IResourceStore>(sp => sp.GetRequiredService<PostgresResourceStore>());
            builder.Services.AddSingleton<ISchemaMigrator>(sp => sp.GetRequiredService<PostgresResourceStore>());
        }
        else
        {
            var dataDirectory = builder.Configuration[$"{HeliosOptions.SectionName}:DataDirectory"] is { Length: > 0 } d ? d : "./data";
            var path = Path.Combine(Path.GetFullPath(dataDirectory), "helios.db");
            builder.Services.AddSingleton<SqliteResourceStore>(sp => new SqliteResourceStore(path, sp.GetRequiredService<IndexExtractor>(), sp.GetRequiredService<TimeProvider>()));
            builder.Services.AddSingleton<IResourceStore>(sp => sp.GetRequiredService<SqliteResourceStore>());
            builder.Services.AddSingleton<ISchemaMigrator>(sp => sp.GetRequiredService<SqliteResourceStore>());
        }

        return topology;
    }

    /// <summary>Applies schema migrations (safe when several instances start at once).</summary>
    public static Task MigrateHeliosStorageAsync(this IServiceProvider services, CancellationToken cancellationToken) =>
        services.GetRequiredService<ISchemaMigrator>().MigrateAsync(cancellationToken);
}
