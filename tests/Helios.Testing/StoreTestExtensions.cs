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

    /// <summary>The store clock's last timestamp (µs).</summary>
    public static Task<long> GetLastTimestampAsync(this IResourceStore store, CancellationToken cancellationToken) =>
        ((SqlResourceStore)store).GetLastTimestampAsync(cancellationToken);

    /// <summary>Takes the store's writer turn until disposed: single writes queue behind it, to be written as a group.</summary>
    public static Task<IAsyncDisposable> HoldWriterTurnAsync(this IResourceStore store, CancellationToken cancellationToken) =>
        ((SqlResourceStore)store).HoldWriterTurnAsync(cancellationToken);

    /// <summary>The most single writes the store has committed in one transaction.</summary>
    public static int LargestWriteGroup(this IResourceStore store) => ((SqlResourceStore)store).LargestWriteGroup;

    /// <summary>Overwrites the stored text of a resource's current version behind the store's back (fault tests:
    /// a stored resource that no longer parses).</summary>
    public static async Task CorruptCurrentVersionAsync(this IResourceStore store, string type, string id, string text, CancellationToken cancellationToken) =>
        await ((SqlResourceStore)store).ExecuteAsync(
            "UPDATE resources SET json = @j WHERE res_type = @t AND res_id = @i AND next_seq IS NULL",
            [new("@j", text), new("@t", type), new("@i", id)], cancellationToken);
}
