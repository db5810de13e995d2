using Helios.Storage;
using Helios.Storage.Sql;

namespace Helios.Testing;

/// <summary>Test-only reads of a SQL store (kept off the production interfaces).</summary>
public static class StoreTestExtensions
{
    /// <summary>Current (not deleted) resources per type.</summary>
    public static Task<IReadOnlyDictionary<string, long>> CountByTypeAsync(this IResourceStore store, CancellationToken cancellationToken) =>
        ((SqlResourceStore)store).CountByTypeAsync(cancellationToken);

    /// <summary>Highest committed key.</summary>
    public static Task<long> GetLastSeqAsync(this IResourceStore store, CancellationToken cancellationToken) =>
        ((SqlResourceStore)store).GetLastSeqAsync(cancellationToken);
}
