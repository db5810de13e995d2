namespace Helios.Testing;

/// <summary>One instance per test process, started on first use and disposed when the process exits.</summary>
public sealed class ProcessWide<T>(Func<Task<T>> start)
    where T : class, IAsyncDisposable
{
    private readonly SemaphoreSlim _lock = new(1, 1);
    private T? _value;

    public async Task<T> GetAsync()
    {
        await _lock.WaitAsync();
        try
        {
            if (_value is null)
            {
                var value = await start();
                AppDomain.CurrentDomain.ProcessExit += (_, _) => value.DisposeAsync().AsTask().GetAwaiter().GetResult();
                _value = value;
            }

            return _value;
        }
        finally
        {
            _lock.Release();
        }
    }
}
