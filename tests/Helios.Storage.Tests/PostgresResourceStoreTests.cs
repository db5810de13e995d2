using Helios.Storage.Postgres;
using Npgsql;
using Task = System.Threading.Tasks.Task;

namespace Helios.Storage.Tests;

public sealed class PostgresResourceStoreTests : ResourceStoreContract
{
    private NpgsqlDataSource? _dataSource;
    private readonly List<NpgsqlDataSource> _legacy = [];

    protected override async Task<IResourceStore> CreateStoreAsync()
    {
        var server = await PostgresServer.GetAsync();
        var cs = await server.CreateDatabaseAsync();
        _dataSource = NpgsqlDataSource.Create(cs);
        var store = new PostgresResourceStore(_dataSource, Extractor, TimeProvider.System);
        // Several instances migrating at once must not fail.
        await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => store.MigrateAsync(CancellationToken.None)));
        return store;
    }

    protected override Helios.Storage.Sql.SqlExportSource CreateSource(IResourceStore store) => new PostgresExportSource((PostgresResourceStore)store, _dataSource!);

    protected override async Task<(IResourceStore Store, Func<string, Task> Sql, Func<string, Task<long>> Scalar, Func<Task> Migrate)> CreateStoreAtVersionAsync(int version)
    {
        var server = await PostgresServer.GetAsync();
        var dataSource = NpgsqlDataSource.Create(await server.CreateDatabaseAsync());
        _legacy.Add(dataSource);
        var store = new PostgresResourceStore(dataSource, Extractor, TimeProvider.System);
        await store.MigrateAsync(version, CancellationToken.None);
        async Task<long> Scalar(string sql)
        {
            await using var cmd = dataSource.CreateCommand(sql);
            return Convert.ToInt64(await cmd.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
        }

        return (store, sql => Scalar(sql), Scalar, () => store.MigrateAsync(CancellationToken.None));
    }

    protected override async Task<int> CountNaturalKeyIndexAsync()
    {
        await using var cmd = _dataSource!.CreateCommand("SELECT COUNT(*) FROM pg_indexes WHERE schemaname = 'public' AND indexname = 'ux_resources_version' AND indexdef LIKE 'CREATE UNIQUE%'");
        return Convert.ToInt32(await cmd.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    protected override async Task<int> CountSecondaryIndexesAsync()
    {
        await using var cmd = _dataSource!.CreateCommand("SELECT COUNT(*) FROM pg_indexes WHERE schemaname = 'public' AND indexname LIKE 'ix_%'");
        return Convert.ToInt32(await cmd.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public override async Task DisposeAsync()
    {
        foreach (var legacy in _legacy)
        {
            await legacy.DisposeAsync();
        }

        if (_dataSource is not null)
        {
            await _dataSource.DisposeAsync();
        }
    }
}
