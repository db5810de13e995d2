namespace Helios.Storage;

/// <summary>Schema management of a store: migrations (safe when several instances start at once) and the secondary
/// indexes that a bulk load may suspend and rebuild.</summary>
public interface ISchemaMigrator
{
    /// <summary>Creates or upgrades the schema and re-creates any missing secondary index.</summary>
    Task MigrateAsync(CancellationToken cancellationToken);

    /// <summary>Drops the search and history indexes (searches become slow until <see cref="EnsureSecondaryIndexesAsync"/>).</summary>
    Task DropSecondaryIndexesAsync(CancellationToken cancellationToken);

    /// <summary>Builds every missing secondary index.</summary>
    Task EnsureSecondaryIndexesAsync(CancellationToken cancellationToken);
}
