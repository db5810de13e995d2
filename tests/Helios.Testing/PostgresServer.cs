using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Helios.Testing;

/// <summary>
/// A PostgreSQL server for tests. Uses <c>HELIOS_TEST_POSTGRES</c> (a connection string) when set; otherwise starts
/// a throwaway server from <c>$(pg_config --bindir)</c> (as the <c>postgres</c> OS user when running as root) in a
/// temporary directory, and removes it on dispose. One server per test process; each caller gets its own database.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    private static readonly ProcessWide<PostgresServer> s_shared = new(StartAsync);

    private readonly string? _dataRoot;
    private readonly string? _binDir;
    private readonly bool _asPostgresUser;
    private int _databases;

    private string? _serverOptions;

    private PostgresServer(string adminConnectionString, string? dataRoot, string? binDir, bool asPostgresUser)
    {
        AdminConnectionString = adminConnectionString;
        _dataRoot = dataRoot;
        _binDir = binDir;
        _asPostgresUser = asPostgresUser;
    }

    public string AdminConnectionString { get; }

    /// <summary>The process-wide server, started on first use and stopped when the process exits.</summary>
    public static Task<PostgresServer> GetAsync() => s_shared.GetAsync();

    /// <summary>A server of the caller's own (never the configured one), for fault tests that stop and start it;
    /// the caller disposes it.</summary>
    public static Task<PostgresServer> StartDedicatedAsync() => StartAsync(useConfigured: false);

    /// <summary>Stops the server (fast shutdown: open connections are terminated, as in a restart or failover).</summary>
    public Task StopAsync() => PgCtlAsync(["-m", "fast", "-w", "stop"]);

    /// <summary>Starts the stopped server again on the same port and data.</summary>
    public Task StartAgainAsync() => PgCtlAsync(["-l", Path.Combine(_dataRoot!, "log"), "-w", "-t", "60", "-o", _serverOptions!, "start"]);

    private Task PgCtlAsync(string[] args)
    {
        if (_dataRoot is null || _binDir is null || _serverOptions is null)
        {
            throw new InvalidOperationException("Only a server this process started can be stopped and started.");
        }

        return RunPgAsync(_asPostgresUser, Path.Combine(_binDir, "pg_ctl"), ["-D", Path.Combine(_dataRoot, "data"), .. args]);
    }

    /// <summary>Creates an empty database and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix = "helios_test")
    {
        var full = $"{prefix}_{Environment.ProcessId}_{Interlocked.Increment(ref _databases)}_{Guid.NewGuid():N}".ToLowerInvariant();
        var name = full[..Math.Min(full.Length, 60)];
        await using (var connection = new NpgsqlConnection(AdminConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            await command.ExecuteNonQueryAsync();
        }

        return new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name }.ToString();
    }

    private static Task<PostgresServer> StartAsync() => StartAsync(useConfigured: true);

    private static async Task<PostgresServer> StartAsync(bool useConfigured)
    {
        var configured = Environment.GetEnvironmentVariable("HELIOS_TEST_POSTGRES");
        if (useConfigured && !string.IsNullOrWhiteSpace(configured))
        {
            return new PostgresServer(configured, null, null, false);
        }

        var binDir = await FindBinDirAsync();
        var root = Path.Combine(Path.GetTempPath(), "helios-pg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(root);
        var asPostgres = Environment.UserName == "root";
        const string password = "helios";
        var pwFile = Path.Combine(root, "pw");
        await File.WriteAllTextAsync(pwFile, password);
        if (asPostgres)
        {
            await RunAsync("chown", ["-R", "postgres:postgres", root]);
            await RunAsync("chmod", ["755", root]);
        }

        var data = Path.Combine(root, "data");
        await RunPgAsync(asPostgres, Path.Combine(binDir, "initdb"),
            ["-D", data, "-U", "postgres", "--pwfile=" + pwFile, "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"]);
        File.Delete(pwFile);
        var port = FreePort();
        var options = $"-p {port} -h 127.0.0.1 -k {root} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=500";
        await RunPgAsync(asPostgres, Path.Combine(binDir, "pg_ctl"),
            ["-D", data, "-l", Path.Combine(root, "log"), "-w", "-t", "60", "-o", options, "start"]);
        var postmaster = int.Parse((await File.ReadAllLinesAsync(Path.Combine(data, "postmaster.pid")))[0], System.Globalization.CultureInfo.InvariantCulture);
        TestTools.RecordPid(postmaster);
        StartWatchdog(data, root);
        var cs = new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1", Port = port, Username = "postgres", Password = password, Database = "postgres",
            MaxPoolSize = 100,
        }.ToString();
        return new PostgresServer(cs, root, binDir, asPostgres) { _serverOptions = options };
    }

    /// <summary>A detached shell that stops the server (immediate shutdown) and removes its directory once this test
    /// process is gone, however it ended: a killed test host leaves no server behind. It reads the postmaster's pid
    /// at that moment, so a server restarted by a fault test is stopped too.</summary>
    private static void StartWatchdog(string data, string root)
    {
        var owner = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var script = $"exec </dev/null >/dev/null 2>&1; while kill -0 {owner} 2>/dev/null; do sleep 1; done; kill -QUIT $(head -1 '{data}/postmaster.pid' 2>/dev/null) 2>/dev/null; sleep 2; rm -rf '{root}'";
        var psi = new ProcessStartInfo("setsid") { UseShellExecute = false, RedirectStandardOutput = false, RedirectStandardError = false };
        foreach (var arg in new[] { "sh", "-c", script })
        {
            psi.ArgumentList.Add(arg);
        }

        // It ends by itself once this process is gone.
        using var watchdog = Process.Start(psi);
    }

    private static async Task<string> FindBinDirAsync()
    {
        try
        {
            var output = await RunAsync("pg_config", ["--bindir"]);
            var dir = output.Trim();
            if (File.Exists(Path.Combine(dir, "initdb")))
            {
                return dir;
            }
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            // fall through to the Debian layout
        }

        var debian = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).FirstOrDefault(d => File.Exists(Path.Combine(d, "initdb")))
            : null;
        return debian ?? throw new InvalidOperationException(
            "PostgreSQL server binaries were not found (pg_config --bindir). Install PostgreSQL 15 or set HELIOS_TEST_POSTGRES to a connection string.");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static Task<string> RunPgAsync(bool asPostgres, string exe, IEnumerable<string> args) =>
        asPostgres ? RunAsync("runuser", ["-u", "postgres", "--", exe, .. args]) : RunAsync(exe, args);

    private static async Task<string> RunAsync(string exe, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {exe}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{exe} {string.Join(' ', args)} failed ({process.ExitCode}): {await stderr}");
        }

        return await stdout;
    }

    public async ValueTask DisposeAsync()
    {
        if (_dataRoot is null || _binDir is null)
        {
            return;
        }

        NpgsqlConnection.ClearAllPools();
        try
        {
            await RunPgAsync(_asPostgresUser, Path.Combine(_binDir, "pg_ctl"), ["-D", Path.Combine(_dataRoot, "data"), "-m", "immediate", "-w", "stop"]);
        }
        catch (InvalidOperationException)
        {
            // already stopped
        }

        try
        {
            Directory.Delete(_dataRoot, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
