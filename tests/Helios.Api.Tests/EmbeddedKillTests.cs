using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;

namespace Helios.Api.Tests;

/// <summary>
/// The embedded Api is killed (SIGKILL: no shutdown, no lease release) in the middle of an export and started again
/// on the same data directory: the export resumes from its committed parts and completes with every resource once.
/// </summary>
public sealed class EmbeddedKillTests : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "helios-kill-" + Guid.NewGuid().ToString("N")[..12]);
    private readonly List<Process> _processes = [];
    private readonly List<string> _logs = [];

    [Fact]
    public async Task ApiKilledMidExport_StartedAgain_TheExportResumesAndIsExact()
    {
        await RunToEndAsync(Start("seed", "--patients", "30", "--group-id", "kill-test"));
        var (first, url) = await StartApiAsync();
        using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(30) };
        var expected = new Dictionary<string, int>();
        foreach (var type in new[] { "Patient", "Observation", "Encounter", "Condition" })
        {
            expected[type] = JsonDocument.Parse(await http.GetStringAsync($"/{type}?_summary=count")).RootElement.GetProperty("total").GetInt32();
        }

        var kickoff = new HttpRequestMessage(HttpMethod.Get, "/$export?_type=Patient,Observation,Encounter,Condition");
        kickoff.Headers.TryAddWithoutValidation("Prefer", "respond-async");
        var accepted = await http.SendAsync(kickoff);
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        var status = accepted.Content.Headers.ContentLocation!.PathAndQuery;

        // Kill once part of the export is committed and part is not.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var poll = await http.GetAsync(status);
            Assert.Equal(HttpStatusCode.Accepted, poll.StatusCode);
            var progress = poll.Headers.TryGetValues("X-Progress", out var values) ? values.First() : "";
            if (progress.Length > 0 && char.IsDigit(progress[0]) && !progress.StartsWith("0%", StringComparison.Ordinal))
            {
                break;
            }

            Assert.True(DateTime.UtcNow < deadline, "the export made no progress: " + Logs());
            await Task.Delay(50);
        }

        first.Kill();
        await first.WaitForExitAsync();

        var (_, again) = await StartApiAsync();
        using var http2 = new HttpClient { BaseAddress = new Uri(again), Timeout = TimeSpan.FromSeconds(30) };
        JsonElement manifest;
        deadline = DateTime.UtcNow.AddSeconds(120);
        while (true)
        {
            var poll = await http2.GetAsync(status);
            if (poll.StatusCode == HttpStatusCode.OK)
            {
                manifest = JsonDocument.Parse(await poll.Content.ReadAsStringAsync()).RootElement.Clone();
                break;
            }

            Assert.True(poll.StatusCode == HttpStatusCode.Accepted, $"{(int)poll.StatusCode}: {await poll.Content.ReadAsStringAsync()}");
            Assert.True(DateTime.UtcNow < deadline, "the export did not complete after the restart: " + Logs());
            await Task.Delay(200);
        }

        var ids = new Dictionary<string, List<string>>();
        foreach (var file in manifest.GetProperty("output").EnumerateArray())
        {
            var text = await http2.GetStringAsync(new Uri(file.GetProperty("url").GetString()!).PathAndQuery);
            foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var resource = JsonDocument.Parse(line).RootElement;
                var type = resource.GetProperty("resourceType").GetString()!;
                (ids.TryGetValue(type, out var list) ? list : ids[type] = []).Add(resource.GetProperty("id").GetString()!);
            }
        }

        foreach (var (type, count) in expected)
        {
            Assert.True(count == ids.GetValueOrDefault(type)?.Count, $"{type}: expected {count}, exported {ids.GetValueOrDefault(type)?.Count}");
            Assert.Equal(count, ids[type].Distinct().Count());
        }
    }

    private string Logs()
    {
        lock (_logs)
        {
            return string.Join("\n", _logs.TakeLast(40));
        }
    }

    private Process Start(params string[] args)
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
        var dll = Path.Combine(TestTools.RepositoryRoot(), "Helios.Api", "bin", configuration, "net10.0", "Helios.Api.dll");
        Assert.True(File.Exists(dll), $"{dll} is not built");
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(dll);
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        psi.Environment["DOTNET_ENVIRONMENT"] = "Production";
        psi.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        psi.Environment["Helios__Topology"] = "embedded";
        psi.Environment["Helios__DataDirectory"] = _directory;
        foreach (var (key, value) in ExportTestSettings.Values(slow: true))
        {
            psi.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        psi.Environment["Logging__LogLevel__Default"] = "Warning";
        var process = Process.Start(psi)!;
        _processes.Add(process);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (_logs) { _logs.Add(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (_logs) { _logs.Add("! " + e.Data); } } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private async Task RunToEndAsync(Process process)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}: {Logs()}");
    }

    private async Task<(Process Process, string Url)> StartApiAsync()
    {
        var url = $"http://127.0.0.1:{TestTools.FreePort().ToString(CultureInfo.InvariantCulture)}";
        var process = Start("--urls", url);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            Assert.False(process.HasExited, "the Api exited: " + Logs());
            try
            {
                if ((await http.GetAsync(url + "/health")).StatusCode == HttpStatusCode.OK)
                {
                    return (process, url);
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
            }

            Assert.True(DateTime.UtcNow < deadline, "the Api did not become healthy: " + Logs());
            await Task.Delay(200);
        }
    }

    public Task InitializeAsync() => Task.CompletedTask;

    /// <summary>Stops every process the test started (xunit calls this, also when the test failed).</summary>
    public async Task DisposeAsync()
    {
        foreach (var process in _processes)
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }

            process.Dispose();
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
