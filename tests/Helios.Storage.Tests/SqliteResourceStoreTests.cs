using Helios.Storage.Sqlite;
using Microsoft.Data.Sqlite;
using Task = System.Threading.Tasks.Task;

namespace Helios.Storage.Tests;

public sealed class SqliteResourceStoreTests : ResourceStoreContract
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "helios-sqlite-" + Guid.NewGuid().ToString("N")[..12]);
    private SqliteResourceStore? _store;

    protected override async Task<IResourceStore> CreateStoreAsync()
    {
        _store = new SqliteResourceStore(Path.Combine(_directory, "helios.db"), Extractor, TimeProvider.System);
        await _store.MigrateAsync(CancellationToken.None);
        await _store.MigrateAsync(CancellationToken.None); // idempotent
        return _store;
    }

    protected override Helios.Storage.Sql.SqlExportSource CreateSource(IResourceStore store) => new SqliteExportSource((SqliteResourceStore)store);

    protected override async Task<(IResourceStore Store, Func<string, Task> Sql, Func<string, Task<long>> Scalar, Func<Task> Migrate)> CreateStoreAtVersionAsync(int version)
    {
        var path = Path.Combine(_directory, $"legacy-{version}.db");
        var store = new SqliteResourceStore(path, Extractor, TimeProvider.System);
        await store.MigrateAsync(version, CancellationToken.None);
        Task<long> Scalar(string sql) => ScalarAsync(path, sql);
        return (store, sql => Scalar(sql), Scalar, () => store.MigrateAsync(CancellationToken.None));
    }

    protected override async Task<int> CountNaturalKeyIndexAsync() => (int)await ScalarAsync(_store!.DatabasePath,
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'ux_resources_version' AND sql LIKE 'CREATE UNIQUE%'");

    protected override async Task<int> CountSecondaryIndexesAsync() => (int)await ScalarAsync(_store!.DatabasePath,
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'ix_%'");

    protected override Task RefuseTokenCodeAsync(string code) => ScalarAsync(_store!.DatabasePath,
        $"CREATE TRIGGER refuse_{code} BEFORE INSERT ON idx_token WHEN NEW.code = '{code}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");

    private static async Task<long> ScalarAsync(string path, string sql)
    {
        await using var c = new SqliteConnection($"Data Source={path}");
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public override Task DisposeAsync()
    {
        _store?.Dispose();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }
}
