using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Data.Sqlite;

namespace Helios.Api.Tests;

/// <summary>The Api in-process, embedded (SQLite in a temporary directory) or on a fresh PostgreSQL database.</summary>
public class HeliosApiFactory : WebApplicationFactory<ApiEntryPoint>, IAsyncLifetime
{
    private readonly bool _postgres;
    private string? _connectionString;
    private S3Server? _s3;
    private string? _bucket;

    public HeliosApiFactory()
        : this(postgres: false)
    {
    }

    protected HeliosApiFactory(bool postgres) => _postgres = postgres;

    public long MaxBodyBytes { get; init; } = 2 * 1024 * 1024;

    public bool IsPostgres => _postgres;

    /// <summary>Extra configuration (e.g. <c>Helios:Export:*</c>) applied after the topology settings.</summary>
    public IDictionary<string, string?> Settings { get; } = new Dictionary<string, string?>();

    /// <summary>The data directory of the embedded topology (also reused by a restarted instance).</summary>
    public string DataDirectory { get; init; } = Path.Combine(Path.GetTempPath(), "helios-api-" + Guid.NewGuid().ToString("N")[..12]);

    /// <summary>Keep the data directory on dispose (a test that restarts the Api on it deletes it).</summary>
    public bool KeepData { get; init; }

    /// <summary>The PostgreSQL server the factory's database lives on (null: the process-wide one).</summary>
    protected PostgresServer? PostgresHost { get; set; }

    /// <summary>The S3 server the factory's bucket lives on (null: the process-wide one).</summary>
    protected S3Server? S3Host { get; set; }

    /// <summary>The bucket of the postgres-s3 topology.</summary>
    public string? Bucket => _bucket;

    public virtual async Task InitializeAsync()
    {
        if (_postgres)
        {
            _connectionString = await (PostgresHost ?? await PostgresServer.GetAsync()).CreateDatabaseAsync("helios_api");
            _s3 = S3Host ?? await S3Server.GetAsync();
            _bucket = _s3.NewBucketName();
        }
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("Helios:MaxRequestBodyBytes", MaxBodyBytes.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (_postgres)
        {
            builder.UseSetting("Helios:Topology", "postgres-s3");
            builder.UseSetting("ConnectionStrings:helios-db", _connectionString);
            builder.UseSetting("Helios:Export:S3:ServiceUrl", _s3!.Url);
            builder.UseSetting("Helios:Export:S3:AccessKey", _s3.AccessKey);
            builder.UseSetting("Helios:Export:S3:SecretKey", _s3.SecretKey);
            builder.UseSetting("Helios:Export:S3:Bucket", _bucket);
        }
        else
        {
            builder.UseSetting("Helios:Topology", "embedded");
            builder.UseSetting("Helios:DataDirectory", DataDirectory);
        }

        foreach (var (key, value) in Settings)
        {
            builder.UseSetting(key, value);
        }
    }

    /// <summary>Sent as <c>Authorization: Bearer</c> by every client this factory creates (auth-on factories set it).</summary>
    public string? AccessToken { get; set; }

    protected override void ConfigureClient(HttpClient client)
    {
        base.ConfigureClient(client);
        if (AccessToken is not null)
        {
            client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AccessToken);
        }
    }

    /// <summary>Extra cleanup of derived factories (an authorization server they started).</summary>
    protected virtual Task DisposeExtrasAsync() => Task.CompletedTask;

    async Task IAsyncLifetime.DisposeAsync()
    {
        await DisposeAsync();
        await DisposeExtrasAsync();
        SqliteConnection.ClearAllPools();
        if (!KeepData && Directory.Exists(DataDirectory))
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
    }
}

public sealed class PostgresHeliosApiFactory() : HeliosApiFactory(postgres: true);

/// <summary>For whole Synthea bundles (the provider bundles are several MB).</summary>
public sealed class LargeBodyHeliosApiFactory : HeliosApiFactory
{
    public LargeBodyHeliosApiFactory() => MaxBodyBytes = 64 * 1024 * 1024;
}
