namespace Helios.Storage;

/// <summary>Schema management of a store: migrations (safe when several instances start at once) and the secondary
/// indexes that a bulk load may suspend and rebuild.</summary>
public interface ISchemaMigrator
{
    /// <summary>Creates or upgrades the schema and re-creates any missing secondary index.</summary>
    Task MigrateAsync(CancellationToken cancellationToken);

    /// <summary>Drops the search and history indexes (searches become slow until <see cref="EnsureSecondaryIndexesAsync"/>).</summary>
    Task DropSecondaryIndexesAsync(CancellationToken cancellationToken);

    /// <summary>For a bulk load: when the store holds no resources, drops the unique index on (type, id, version) as
    /// well (the load then tracks its keys itself, see <see cref="LoadKeys"/>) and returns true. Only while nothing
    /// else writes: <see cref="EnsureSecondaryIndexesAsync"/> re-creates it as unique at the end.</summary>
    Task<bool> TryDropNaturalKeyIndexAsync(CancellationToken cancellationToken);

    /// <summary>Builds every missing secondary index (and the natural-key index, if a load dropped it).</summary>
    Task EnsureSecondaryIndexesAsync(CancellationToken cancellationToken);

    /// <summary>After a bulk load: refreshes the query planner's statistics, so the first queries on the new data
    /// (an export right after the load) are not planned for empty tables.</summary>
    Task RefreshStatisticsAsync(CancellationToken cancellationToken);
}
