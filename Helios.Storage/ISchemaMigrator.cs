namespace Helios.Storage;

/// <summary>Creates or upgrades the store's schema; safe when several instances start at once.</summary>
public interface ISchemaMigrator
{
    Task MigrateAsync(CancellationToken cancellationToken);
}
