using System.Runtime.InteropServices;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Helios.Hosting;

/// <summary>
/// Lowers the CPU priority of a <c>Helios.Worker</c> process to <c>Helios:Worker:Nice</c> (1-19; 0, the default,
/// leaves it alone), so that on a host it shares with the Api, the Api's requests (status polls, REST reads and
/// writes) are scheduled ahead of export work. On Linux the nice value belongs to each thread and a new thread takes its
/// creator's, so every thread is lowered when the host starts and again once it has started (the Hangfire server's
/// threads exist then); threads made later descend from lowered ones. Elsewhere the setting is ignored with a warning.
/// </summary>
public sealed partial class WorkerCpuPriority(IConfiguration configuration, IHostApplicationLifetime lifetime, ILogger<WorkerCpuPriority> logger) : IHostedService
{
    public const string SettingName = "Helios:Worker:Nice";

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var nice = ReadNice(configuration);
        if (nice == 0)
        {
            return Task.CompletedTask;
        }

        if (!OperatingSystem.IsLinux())
        {
            LogNotLinux(logger, nice);
            return Task.CompletedTask;
        }

        Lower(nice);
        lifetime.ApplicationStarted.Register(() => LogLowered(logger, nice, Lower(nice)));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>The configured nice value; a value outside 0-19 is refused at startup.</summary>
    public static int ReadNice(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var text = configuration[SettingName];
        if (string.IsNullOrWhiteSpace(text))
        {
            return 0;
        }

        return int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var nice) && nice is >= 0 and <= 19
            ? nice
            : throw new InvalidOperationException($"{SettingName} is '{text}': give a nice value from 0 (normal priority) to 19 (lowest).");
    }

    /// <summary>Sets every thread of this process to <paramref name="nice"/> (Linux); returns how many were set.</summary>
    public static int Lower(int nice)
    {
        var lowered = 0;
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            if (int.TryParse(Path.GetFileName(task), out var threadId) && SetPriority(PrioProcess, threadId, nice) == 0)
            {
                lowered++;
            }
        }

        return lowered;
    }

    private const int PrioProcess = 0;

    [LibraryImport("libc", EntryPoint = "setpriority", SetLastError = true)]
    private static partial int SetPriority(int which, int who, int priority);

    [LoggerMessage(Level = LogLevel.Information, Message = "Export work runs at nice {Nice}: {Threads} threads lowered (Helios:Worker:Nice)")]
    private static partial void LogLowered(ILogger logger, int nice, int threads);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Helios:Worker:Nice is {Nice}, but CPU priority is only lowered on Linux; the setting is ignored here")]
    private static partial void LogNotLinux(ILogger logger, int nice);
}
