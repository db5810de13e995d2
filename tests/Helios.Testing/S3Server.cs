using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Helios.Testing;

/// <summary>
/// An S3-compatible server for tests. Uses <c>HELIOS_TEST_S3_URL</c> (with <c>HELIOS_TEST_S3_ACCESS_KEY</c> /
/// <c>HELIOS_TEST_S3_SECRET_KEY</c>) when set; otherwise runs the npm <c>s3rver</c> from <c>tests/tools</c> (installing
/// it there first when missing) on a free port, in a temporary directory. One server per test process; callers
/// isolate themselves with their own bucket.
/// </summary>
public sealed class S3Server : IAsyncDisposable
{
    private static readonly ProcessWide<S3Server> s_shared = new(() => StartAsync(useConfigured: true));

    private readonly string? _directory;
    private readonly int _port;
    private Process? _process;
    private int _buckets;

    private S3Server(string url, string accessKey, string secretKey, Process? process, string? directory, int port)
    {
        Url = url;
        AccessKey = accessKey;
        SecretKey = secretKey;
        _process = process;
        _directory = directory;
        _port = port;
    }

    public string Url { get; }

    public string AccessKey { get; }

    public string SecretKey { get; }

    /// <summary>The node process this fixture started (null when it uses a configured server).</summary>
    public int? ProcessId => _process?.Id;

    /// <summary>A fresh bucket name (the store creates it).</summary>
    public string NewBucketName() => $"helios-{Environment.ProcessId}-{Interlocked.Increment(ref _buckets)}-{Guid.NewGuid().ToString("N")[..8]}";

    public static Task<S3Server> GetAsync() => s_shared.GetAsync();

    /// <summary>An s3rver of the caller's own (never the configured server), which it may stop and start again; the
    /// caller disposes it.</summary>
    public static Task<S3Server> StartDedicatedAsync() => StartAsync(useConfigured: false);

    /// <summary>Kills the server: connections are refused until <see cref="StartAgainAsync"/>. Its data (objects and
    /// unfinished multipart uploads) stays on disk.</summary>
    public async Task StopAsync()
    {
        var process = _process ?? throw new InvalidOperationException("The server is not running, or it is not one this process started.");
        _process = null;
        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync();
        process.Dispose();
    }

    /// <summary>Starts the stopped server again on the same port and data.</summary>
    public async Task StartAgainAsync()
    {
        if (_directory is null || _process is not null)
        {
            throw new InvalidOperationException("Only a stopped server this process started can be started again.");
        }

        _process = await LaunchAsync(_directory, _port);
    }

    private static async Task<S3Server> StartAsync(bool useConfigured)
    {
        var configured = Environment.GetEnvironmentVariable("HELIOS_TEST_S3_URL");
        if (useConfigured && !string.IsNullOrWhiteSpace(configured))
        {
            return new S3Server(configured, Environment.GetEnvironmentVariable("HELIOS_TEST_S3_ACCESS_KEY") ?? "S3RVER",
                Environment.GetEnvironmentVariable("HELIOS_TEST_S3_SECRET_KEY") ?? "S3RVER", null, null, 0);
        }

        var directory = Path.Combine(Path.GetTempPath(), "helios-s3-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(directory);
        var port = TestTools.FreePort();
        var process = await LaunchAsync(directory, port);
        return new S3Server($"http://127.0.0.1:{port}", "S3RVER", "S3RVER", process, directory, port);
    }

    private static async Task<Process> LaunchAsync(string directory, int port)
    {
        await TestTools.EnsureNpmToolAsync(Path.Combine("s3rver", "package.json"));
        var script = Path.Combine(TestTools.RepositoryRoot(), "tests", "tools", "s3rver-for-test.js");
        var psi = new ProcessStartInfo("node") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        // The wrapper exits when this process does, however this process ends.
        foreach (var arg in new[] { script, Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture), directory, port.ToString(System.Globalization.CultureInfo.InvariantCulture) })
        {
            psi.ArgumentList.Add(arg);
        }

        // s3rver encrypts list continuation tokens with DES, which Node's OpenSSL 3 only offers through the legacy provider.
        psi.Environment["NODE_OPTIONS"] = "--openssl-legacy-provider";
        var process = Process.Start(psi) ?? throw new InvalidOperationException("Could not start node for s3rver.");
        // Its output goes to a log beside the data directory: if it ever dies, the log says why.
        var log = TextWriter.Synchronized(new StreamWriter(directory + ".log", append: true) { AutoFlush = true });
        process.OutputDataReceived += (_, e) => log.WriteLine(e.Data);
        process.ErrorDataReceived += (_, e) => log.WriteLine(e.Data);
        process.Exited += (_, _) => log.WriteLine($"s3rver exited with code {process.ExitCode}");
        process.EnableRaisingEvents = true;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        TestTools.RecordPid(process.Id);
        await TestTools.WaitForPortAsync(port, process, TimeSpan.FromSeconds(30), "s3rver");
        return process;
    }

    private int _disposed;

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return ValueTask.CompletedTask;
        }

        if (_process is { HasExited: false } || (_process is null && _directory is not null))
        {
            _process?.Kill(entireProcessTree: true);
            _process?.WaitForExit(5000);
            // It ran to the end: its log is of no interest (one that died early keeps its log in the temp folder).
            try
            {
                File.Delete(_directory + ".log");
            }
            catch (IOException)
            {
                // still open: best effort
            }
        }

        _process?.Dispose();
        if (_directory is not null && Directory.Exists(_directory))
        {
            try
            {
                Directory.Delete(_directory, recursive: true);
            }
            catch (IOException)
            {
                // best effort
            }
        }

        return ValueTask.CompletedTask;
    }
}

/// <summary>Helpers shared by the server fixtures.</summary>
public static class TestTools
{
    /// <summary>The repository root (the folder holding Helios.Aspire.sln).</summary>
    public static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Helios.Aspire.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("The repository root (Helios.Aspire.sln) was not found above " + AppContext.BaseDirectory);
    }

    /// <summary>The path of a file of an npm package of <c>tests/tools</c>, installing the packages there first if needed.</summary>
    public static async Task<string> EnsureNpmToolAsync(string relativePath)
    {
        var tools = Path.Combine(RepositoryRoot(), "tests", "tools");
        await EnsureNpmPackagesAsync(tools, relativePath);
        return Path.Combine(tools, "node_modules", relativePath);
    }

    /// <summary>Installs the npm packages of <paramref name="folder"/> (<c>npm ci</c> from its lock file when it has one)
    /// unless <c>node_modules/<paramref name="probe"/></c> already exists; under a lock file, as test processes run
    /// in parallel.</summary>
    public static async Task EnsureNpmPackagesAsync(string folder, string probe)
    {
        var target = Path.Combine(folder, "node_modules", probe);
        if (File.Exists(target))
        {
            return;
        }

        var lockPath = Path.Combine(folder, ".install.lock");
        var deadline = DateTime.UtcNow.AddMinutes(5);
        while (true)
        {
            try
            {
                await using var held = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
                if (!File.Exists(target))
                {
                    var psi = new ProcessStartInfo("npm") { WorkingDirectory = folder, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
                    var args = File.Exists(Path.Combine(folder, "package-lock.json"))
                        ? new[] { "ci", "--no-audit", "--no-fund" }
                        : ["install", "--no-audit", "--no-fund", "--no-package-lock"];
                    foreach (var arg in args)
                    {
                        psi.ArgumentList.Add(arg);
                    }

                    using var npm = Process.Start(psi) ?? throw new InvalidOperationException("npm could not be started; install Node.js 20+.");
                    var stderr = npm.StandardError.ReadToEndAsync();
                    await npm.StandardOutput.ReadToEndAsync();
                    await npm.WaitForExitAsync();
                    if (npm.ExitCode != 0 || !File.Exists(target))
                    {
                        throw new InvalidOperationException($"npm {args[0]} in {folder} failed ({npm.ExitCode}): {await stderr}");
                    }
                }

                return;
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(500);
            }
        }
    }

    /// <summary>Appends a server's process id to the file named by <c>HELIOS_TEST_PIDFILE</c> (set by <c>.ci/run</c>,
    /// which stops exactly those processes when it ends).</summary>
    public static void RecordPid(int pid)
    {
        if (Environment.GetEnvironmentVariable("HELIOS_TEST_PIDFILE") is { Length: > 0 } file)
        {
            File.AppendAllText(file, pid.ToString(System.Globalization.CultureInfo.InvariantCulture) + Environment.NewLine);
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public static async Task WaitForPortAsync(int port, Process process, TimeSpan timeout, string name)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"{name} exited with code {process.ExitCode} before listening on port {port}.");
            }

            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }

        throw new TimeoutException($"{name} did not listen on port {port} within {timeout.TotalSeconds} s.");
    }
}
