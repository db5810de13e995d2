using Helios.Api;
using Helios.Testing;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Data.Sqlite;

namespace Helios.Api.Tests;

/// <summary>The Api in-process, embedded (SQLite in a temporary directory) or on a fresh PostgreSQL database.</summary>
public class HeliosApiFactory : WebApplicationFactory<ApiEntryPoint>, IAsyncLifetime
{
    private readonly bool _postgres;
    private readonly string _dataDirectory = Path.Combine(Path.GetTempPath(), "helios-api-" + Guid.NewGuid().ToString("N")[..12]);
    private string? _connectionString;

    public HeliosApiFactory()
        : this(postgres: false)
    {
    }

    protected HeliosApiFactory(bool postgres) => _postgres = postgres;

    public long MaxBodyBytes { get; init; } = 2 * 1024 * 1024;

    public async Task InitializeAsync()
    {
        if (_postgres)
        {
            _connectionString = await (await PostgresServer.GetAsync()).CreateDatabaseAsync("helios_api");
        }
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("Helios:MaxRequestBodyBytes", MaxBodyBytes.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (_postgres)
        {
            builder.UseSetting("Helios:Topology", "postgres-s3");
            builder.UseSetting("ConnectionStrings:helios-db", _connectionString);
        }
        else
        {
            builder.UseSetting("Helios:Topology", "embedded");
            builder.UseSetting("Helios:DataDirectory", _dataDirectory);
        }
    }

    async Task IAsyncLifetime.DisposeAsync()
    {
        await DisposeAsync();
        SqliteConnection.ClearAllPools();
        if (Directory.Exists(_dataDirectory))
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
    }
}

public sealed class PostgresHeliosApiFactory() : HeliosApiFactory(postgres: true);

/// <summary>For whole Synthea bundles (the provider bundles are several MB).</summary>
public sealed class LargeBodyHeliosApiFactory : HeliosApiFactory
{
    public LargeBodyHeliosApiFactory() => MaxBodyBytes = 64 * 1024 * 1024;
}
