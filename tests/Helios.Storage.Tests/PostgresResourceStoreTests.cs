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

    protected override async Task RefuseTokenCodeAsync(string code)
    {
        await using var trigger = _dataSource!.CreateCommand($"""
            CREATE FUNCTION refuse_{code}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF NEW.code = '{code}' THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$;
            CREATE TRIGGER refuse_{code} BEFORE INSERT ON idx_token FOR EACH ROW EXECUTE FUNCTION refuse_{code}();
            """);
        await trigger.ExecuteNonQueryAsync();
    }

    /// <summary>A small write sends its commit in the same batch as its rows. When a statement of that batch fails,
    /// nothing of the write stays, the error reaches the caller, and the pooled connection comes back clean (the next
    /// writes on it commit).</summary>
    [Fact]
    public async Task ASmallWrite_WhoseBatchFailsBeforeItsCommit_LeavesNothing_AndTheNextWritesCommit()
    {
        await Store.WriteAsync([ResourceWrite.Create(new Hl7.Fhir.Model.Patient { Id = "batch-ok", Gender = Hl7.Fhir.Model.AdministrativeGender.Male })], CancellationToken.None);
        await RefuseTokenCodeAsync("other");

        var before = await Store.GetLastSeqAsync(CancellationToken.None);
        // The writes that follow take pooled connections, the failed write's among them (the pool hands back the last one returned).
        for (var i = 0; i < 3; i++)
        {
            var refused = new Hl7.Fhir.Model.Patient { Id = $"batch-refused-{i}", Gender = Hl7.Fhir.Model.AdministrativeGender.Other };
            var error = await Assert.ThrowsAsync<PostgresException>(() => Store.WriteAsync([ResourceWrite.Create(refused)], CancellationToken.None));
            Assert.Contains("refused by the test", error.MessageText, StringComparison.Ordinal);
            Assert.Null(await Store.ReadAsync("Patient", refused.Id, CancellationToken.None));
            Assert.Equal(before, await Store.GetLastSeqAsync(CancellationToken.None));

            var update = (await Store.WriteAsync([ResourceWrite.Update(new Hl7.Fhir.Model.Patient { Id = "batch-ok", Gender = Hl7.Fhir.Model.AdministrativeGender.Female })], CancellationToken.None)).Single();
            Assert.Equal(i + 2, update.Resource!.VersionId);
            before = await Store.GetLastSeqAsync(CancellationToken.None);
        }

        await using var inTransaction = _dataSource.CreateCommand("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'");
        Assert.Equal(0L, (long)(await inTransaction.ExecuteScalarAsync())!);
        Assert.Equal(4, (await Store.ReadAsync("Patient", "batch-ok", CancellationToken.None))!.VersionId);
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
