namespace Helios.Storage;

/// <summary>
/// The versions one bulk load has written, for a load into a store that held no resources when it began: the store
/// then needs no natural-key index (and no lookup) during the load, since any earlier version of a key was written by
/// this load. Keys are held as 64-bit hashes (about 40 bytes each); a hash that matches is confirmed against the
/// stored row's type and id, and the rare colliding keys are kept exactly.
/// </summary>
public sealed class LoadKeys
{
    private readonly Func<string, string, long> _hash;
    private readonly Dictionary<long, Version> _byHash = [];
    private readonly Dictionary<(string Type, string Id), Version> _exact = [];
    private readonly HashSet<(string Type, string Id)> _colliding = [];

    public LoadKeys()
        : this(Fnv64)
    {
    }

    /// <summary>With another hash function (tests force collisions with it).</summary>
    internal LoadKeys(Func<string, string, long> hash) => _hash = hash;

    internal readonly record struct Version(long Seq, int Number, bool Deleted);

    /// <summary>The version this load last wrote for each key it has seen; <paramref name="keyOfSeq"/> reads the
    /// type and id stored under a key (to confirm a matching hash).</summary>
    internal async Task<Dictionary<(string Type, string Id), Version>> LookupAsync(
        IReadOnlyCollection<(string Type, string Id)> keys, Func<long, Task<(string Type, string Id)?>> keyOfSeq)
    {
        var result = new Dictionary<(string, string), Version>();
        var unseen = new Dictionary<long, (string Type, string Id)>();
        foreach (var key in keys)
        {
            var hash = _hash(key.Type, key.Id);
            if (_exact.TryGetValue(key, out var exact))
            {
                result[key] = exact;
            }
            else if (_byHash.TryGetValue(hash, out var byHash))
            {
                if (await keyOfSeq(byHash.Seq) == key)
                {
                    result[key] = byHash;
                }
                else
                {
                    _colliding.Add(key);
                }
            }
            else if (!unseen.TryAdd(hash, key) && unseen[hash] != key)
            {
                // Two new keys of one batch with the same hash: both are kept exactly.
                _colliding.Add(key);
                _colliding.Add(unseen[hash]);
            }
        }

        return result;
    }

    /// <summary>Records the versions a committed batch wrote.</summary>
    internal void Record((string Type, string Id) key, Version version)
    {
        if (_exact.ContainsKey(key) || _colliding.Remove(key))
        {
            _exact[key] = version;
        }
        else
        {
            _byHash[_hash(key.Type, key.Id)] = version;
        }
    }

    private static long Fnv64(string type, string id) => (long)Fnv1a.Hash(type, '/', id);
}
