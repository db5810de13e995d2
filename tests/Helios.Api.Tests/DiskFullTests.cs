using System.Diagnostics;
using System.Net;
using System.Text.Json;

namespace Helios.Api.Tests;

/// <summary>Embedded, with the export directory on a 2 MiB tmpfs of its own (mounting needs root; CI runs as root).
/// The database stays on the ordinary data directory.</summary>
public sealed class DiskFullFactory : HeliosApiFactory
{
    private readonly string _mount = Path.Combine(Path.GetTempPath(), "helios-full-" + Guid.NewGuid().ToString("N")[..12]);

    public DiskFullFactory()
    {
        ExportTestSettings.Apply(this, slow: false);
        Settings["Helios:Export:LocalDirectory"] = _mount;
        Settings["Helios:Export:MaxAttempts"] = "2";
        Settings["Helios:Export:RetryBackoff"] = "00:00:00.200";
    }

    public string ExportDirectory => _mount;

    public bool Mounted { get; private set; }

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        Directory.CreateDirectory(_mount);
        if (Environment.UserName == "root" || Environment.GetEnvironmentVariable("USER") == "root")
        {
            Mounted = await RunAsync("mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", _mount) == 0;
        }
    }

    protected override async Task DisposeExtrasAsync()
    {
        if (Mounted)
        {
            await RunAsync("umount", "-l", _mount);
        }

        Directory.Delete(_mount, recursive: true);
    }

    /// <summary>Bytes in use on the tmpfs.</summary>
    public long UsedBytes()
    {
        var drive = new DriveInfo(_mount);
        return drive.TotalSize - drive.AvailableFreeSpace;
    }

    private static async Task<int> RunAsync(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        using var process = Process.Start(psi)!;
        await process.WaitForExitAsync();
        return process.ExitCode;
    }
}

/// <summary>
/// The local file store runs out of space in the middle of an export: the export fails with an OperationOutcome that
/// says so, its files (published parts and temp files) are removed, and the server keeps serving: reads, writes and a
/// small export that fits.
/// </summary>
public sealed class DiskFullTests(DiskFullFactory factory) : IClassFixture<DiskFullFactory>
{
    [SkippableFact]
    public async Task ExportDirectoryFull_TheExportFailsCleanly_ItsFilesAreRemoved_AndTheServerKeepsServing()
    {
        Skip.IfNot(factory.Mounted, "mounting a tmpfs needs root (CI runs as root)");
        var counts = await LargeSeed.EnsureAsync(factory);
        Assert.True(counts.Values.Sum() > 10_000);
        var client = new ExportClient(factory.CreateClient(), ExportDiagnostics.For(factory));

        var statusUrl = await client.KickoffAsync("/$export");
        var jobId = statusUrl[(statusUrl.LastIndexOf('/') + 1)..];
        var end = await client.WaitForEndAsync(statusUrl, TimeSpan.FromSeconds(120));
        var body = await end.Content.ReadAsStringAsync();
        Assert.True(end.StatusCode == HttpStatusCode.InternalServerError, $"{(int)end.StatusCode}: {body}");
        var outcome = JsonDocument.Parse(body).RootElement;
        Assert.Equal("OperationOutcome", outcome.GetProperty("resourceType").GetString());
        var diagnostics = outcome.GetProperty("issue")[0].GetProperty("diagnostics").GetString()!;
        Assert.Contains("No space left on device", diagnostics, StringComparison.Ordinal);
        Assert.Contains("export directory could not be written", diagnostics, StringComparison.Ordinal);

        // Its files go as it fails (not only when it expires): parts, temp files, the directory.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (Directory.Exists(Path.Combine(factory.ExportDirectory, jobId)))
        {
            Assert.True(DateTime.UtcNow < deadline, "the failed export's files were not removed: " +
                string.Join(", ", Directory.GetFiles(Path.Combine(factory.ExportDirectory, jobId)).Select(Path.GetFileName)));
            await Task.Delay(200);
        }

        Assert.True(factory.UsedBytes() < 256 * 1024, $"{factory.UsedBytes()} bytes still used on the export volume");

        // The server keeps serving: a read, a write, and an export that fits completes.
        Assert.Equal(HttpStatusCode.OK, (await client.Api.GetAsync("/Patient?_count=5")).StatusCode);
        var write = await client.Api.PutAsync("/Organization/after-full", new StringContent(
            """{"resourceType":"Organization","id":"after-full","name":"Written after the disk filled"}""", System.Text.Encoding.UTF8, "application/fhir+json"));
        Assert.True(write.IsSuccessStatusCode, $"{(int)write.StatusCode}: {await write.Content.ReadAsStringAsync()}");
        var small = await client.KickoffAsync("/$export?_type=Organization,Practitioner");
        var manifest = await client.WaitForManifestAsync(small);
        var lines = await client.DownloadOutputAsync(manifest);
        Assert.Equal(counts["Organization"] + 1, lines["Organization"].Count);
        Assert.Equal(counts["Practitioner"], lines["Practitioner"].Count);
    }
}
