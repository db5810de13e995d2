using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Helios.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Helios.AppHost.Tests;

/// <summary>
/// The composed stack in the local mode (no container runtime): PostgreSQL, the S3 store and the authorization server
/// as local processes, two workers and the Api, started by the real AppHost. A bulk client gets a token with a
/// private_key_jwt assertion, writes data, runs Group exports and downloads every file.
/// </summary>
public sealed class LocalStackTests
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromMinutes(5);

    [Fact]
    public async Task LocalStack_RunsAGroupExportEndToEnd_WithASmartToken()
    {
        await using var stack = await LocalStack.StartAsync(["--Helios:SeedPatients=4"]);
        var api = stack.Api;
        var token = stack.CancellationToken;
        var tag = Guid.NewGuid().ToString("N")[..8];
        async Task PutAsync(string path, string json)
        {
            var response = await api.PutAsync(path, new StringContent(json, Encoding.UTF8, "application/fhir+json"), token);
            Assert.True(response.IsSuccessStatusCode, $"PUT {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(token)}");
        }

        foreach (var p in new[] { "a", "b" })
        {
            await PutAsync($"/Patient/{p}-{tag}", $$"""{"resourceType":"Patient","id":"{{p}}-{{tag}}"}""");
            await PutAsync($"/Observation/{p}-obs-{tag}", $$$"""{"resourceType":"Observation","id":"{{{p}}}-obs-{{{tag}}}","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/{{{p}}}-{{{tag}}}"}}""");
        }

        await PutAsync($"/Group/g-{tag}", $$$"""{"resourceType":"Group","id":"g-{{{tag}}}","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/a-{{{tag}}}"}}]}""");

        // The dashboard's "Get a development token" command: its token works too.
        var command = await stack.App.Services.GetRequiredService<ResourceCommandService>().ExecuteCommandAsync("helios-api", "dev-token", token);
        Assert.True(command.Success, command.Message);
        var devToken = System.Text.RegularExpressions.Regex.Match(command.Data!.Value, @"eyJ[\w-]+\.[\w-]+\.[\w-]+").Value;
        using (var request = new HttpRequestMessage(HttpMethod.Get, $"/Patient/a-{tag}"))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", devToken);
            Assert.Equal(HttpStatusCode.OK, (await api.SendAsync(request, token)).StatusCode);
        }

        var ids = await stack.ExportAsync($"/Group/g-{tag}/$export");
        Assert.Equal([$"a-{tag}"], ids["Patient"]);
        Assert.Equal([$"a-obs-{tag}"], ids["Observation"]);

        // The sample data of the first start: the seeded Group exports at once, with its patients' records.
        await stack.WaitForSeedAsync();
        var sample = await stack.ExportAsync("/Group/helios-sample/$export");
        Assert.Equal(4, sample["Patient"].Count);
        Assert.True(sample.GetValueOrDefault("Observation")?.Count > 0, "the seeded patients' Observations are exported");

        // One trace per export, across processes: the kick-off in the Api, the plan, every partition and the
        // completion in the workers, all children of the kick-off span.
        var jobId = stack.LastJobId!;
        var spans = await stack.WaitForSpansAsync(s => s.Count(x => x.Attributes.GetValueOrDefault("helios.export.job_id") == jobId && x.Name == "helios.export.complete") == 1);
        var mine = spans.Where(s => s.Attributes.GetValueOrDefault("helios.export.job_id") == jobId).ToList();
        var kickoff = Assert.Single(mine, s => s.Name == "helios.export.kickoff");
        Assert.Equal("helios-api", kickoff.Service);
        Assert.Contains(spans, s => s.SpanId == kickoff.ParentSpanId && s.Service == "helios-api"); // the kick-off request
        var stages = mine.Where(s => s.Name is "helios.export.plan" or "helios.export.partition" or "helios.export.complete").ToList();
        Assert.Single(stages, s => s.Name == "helios.export.plan");
        Assert.Contains(stages, s => s.Name == "helios.export.partition");
        Assert.All(stages, s =>
        {
            Assert.Equal("helios-worker", s.Service);
            Assert.Equal(kickoff.TraceId, s.TraceId);
            Assert.Equal(kickoff.SpanId, s.ParentSpanId);
        });
        Assert.Contains(spans, s => s.Name == "helios.export.part" && s.TraceId == kickoff.TraceId && stages.Any(p => p.SpanId == s.ParentSpanId));
    }

    /// <summary>
    /// The deployed shape of postgres-s3: two Api replicas behind the AppHost's proxy (kick-off, polls and downloads
    /// land on either) and two worker replicas. The worker holding a partition lease is killed (SIGKILL) after parts
    /// were committed: the other one takes the partition over and the export completes with every resource once.
    /// </summary>
    [Fact]
    public async Task LocalStack_TwoApisTwoWorkers_TheWorkerHoldingALeaseKilled_TheExportIsExact()
    {
        // Small, slowed partitions, one export thread per worker and short leases: the export outlives the kill on
        // any machine (with the default of one thread per core it ended within the first poll on a many-core CI
        // host), and the dead replica's partition is taken over by the other one.
        await using var stack = await LocalStack.StartAsync(
        [
            "--Helios:SeedPatients=30", "--Helios:ApiReplicas=2", "--Helios:Export:PartitionRows=60", "--Helios:Export:ReadBatchRows=20",
            "--Helios:Export:WorkerCount=1", "--Helios:Export:MaxPartBytes=12000", "--Helios:Export:DelayPerBatch=00:00:00.200", "--Helios:Export:LeaseDuration=00:00:04",
            "--Helios:Export:HeartbeatInterval=00:00:01", "--Helios:Export:RequeueAfter=00:00:05", "--Helios:Export:SupervisorInterval=00:00:01",
            "--Helios:Export:PollThrottleFraction=0",
        ]);
        await stack.WaitForSeedAsync();
        var expectedObservations = await stack.CountAsync("Observation");
        Assert.Equal(2, stack.ApiProcesses().Count);
        await using var db = NpgsqlDataSource.Create((await stack.App.GetConnectionStringAsync("helios-db", stack.CancellationToken))!);

        int killed = 0;
        var ids = await stack.ExportAsync("/Group/helios-sample/$export", async () =>
        {
            Assert.Equal(2, stack.WorkerProcesses().Count);
            // The AppHost runs the workers at nice 10 (every thread, including the ones exporting now); the Api at 0.
            Assert.All(stack.WorkerProcesses(), p => Assert.Equal([10], ThreadNiceValues(p.Id)));
            Assert.All(stack.ApiProcesses(), p => Assert.Equal([0], ThreadNiceValues(p.Id)));
            var jobId = stack.LastJobId!;
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (killed == 0)
            {
                // A worker that holds a live lease while parts of the export are committed.
                await using var command = db.CreateCommand("""
                    SELECT p.lease_owner FROM export_partitions p
                    WHERE p.job_id = $1 AND p.status = 'running' AND EXISTS (SELECT 1 FROM export_files f WHERE f.job_id = $1)
                    LIMIT 1
                    """);
                command.Parameters.AddWithValue(jobId);
                if (await command.ExecuteScalarAsync(stack.CancellationToken) is string owner)
                {
                    var holder = stack.WorkerProcesses().SingleOrDefault(p => owner.Contains($"-{p.Id}-", StringComparison.Ordinal));
                    if (holder is not null)
                    {
                        holder.Kill();
                        killed = holder.Id;
                        break;
                    }
                }

                await using var state = db.CreateCommand("SELECT status FROM export_jobs WHERE id = $1");
                state.Parameters.AddWithValue(jobId);
                var jobStatus = (string?)await state.ExecuteScalarAsync(stack.CancellationToken);
                Assert.True(jobStatus == "Running", $"the export was {jobStatus} before a worker holding a lease could be killed: it ran too fast for this test");
                Assert.True(DateTime.UtcNow < deadline, "no worker held a lease while parts were committed");
                await Task.Delay(20, stack.CancellationToken);
            }
        });

        Assert.NotEqual(0, killed);
        Assert.Equal(30, ids["Patient"].Count);
        Assert.Equal(expectedObservations, ids["Observation"].Count);
        foreach (var (type, list) in ids)
        {
            Assert.True(list.Count == list.Distinct().Count(), $"a {type} was exported twice");
        }

        // A partition really was taken over from the dead worker.
        await using var attempts = db.CreateCommand("SELECT MAX(attempts) FROM export_partitions WHERE job_id = $1");
        attempts.Parameters.AddWithValue(stack.LastJobId!);
        Assert.True(Convert.ToInt32(await attempts.ExecuteScalarAsync(stack.CancellationToken), System.Globalization.CultureInfo.InvariantCulture) >= 2);
    }

    /// <summary>The distinct nice values of a process's threads (field 19 of <c>/proc/pid/task/tid/stat</c>).</summary>
    private static int[] ThreadNiceValues(int pid) =>
        [.. Directory.EnumerateDirectories($"/proc/{pid}/task").Select(task =>
        {
            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(task, "stat"));
            }
            catch (IOException)
            {
                return (int?)null; // the thread ended meanwhile
            }

            // After the command name in parentheses: state is field 3, nice field 19.
            return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[16], System.Globalization.CultureInfo.InvariantCulture);
        }).OfType<int>().Distinct().Order()];

    /// <summary>One started local stack and a client with a development token.</summary>
    private sealed class LocalStack : IAsyncDisposable
    {
        private readonly CancellationTokenSource _cts = new(s_timeout);
        private DistributedApplication _app = null!;
        private string _dataDirectory = null!;
        private readonly OtlpTraceReceiver _telemetry = new();

        /// <summary>The job id of the last export run by <see cref="ExportAsync"/>.</summary>
        public string? LastJobId { get; private set; }

        public HttpClient Api { get; private set; } = null!;

        public DistributedApplication App => _app;

        public CancellationToken CancellationToken => _cts.Token;

        public static async Task<LocalStack> StartAsync(string[] args)
        {
            var stack = new LocalStack { _dataDirectory = Path.Combine(Path.GetTempPath(), "helios-apphost-local-" + Guid.NewGuid().ToString("N")[..8]) };
            var token = stack._cts.Token;
            var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Helios_AppHost>(
            [
                "--Helios:Infrastructure=local", $"--Helios:DataDirectory={stack._dataDirectory}", "--Parameters:helios-db-password=local-stack-test",
                "--DcpPublisher:ContainerRuntimeInitializationTimeout=00:00:00", .. args,
            ], token);
            // The processes export their telemetry to this test's receiver instead of the (disabled) dashboard.
            foreach (var project in builder.Resources.OfType<ProjectResource>().ToList())
            {
                builder.CreateResourceBuilder(project)
                    .WithEnvironment("OTEL_EXPORTER_OTLP_ENDPOINT", stack._telemetry.Endpoint)
                    .WithEnvironment("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
                    .WithEnvironment("OTEL_BSP_SCHEDULE_DELAY", "500");
            }

            stack._app = await builder.BuildAsync(token).WaitAsync(s_timeout, token);
            await stack._app.StartAsync(token).WaitAsync(s_timeout, token);
            await stack._app.ResourceNotifications.WaitForResourceHealthyAsync("helios-api", token).WaitAsync(s_timeout, token);

            using var http = new HttpClient();
            var accessToken = await GetDevTokenAsync(http, stack._app.GetEndpoint("helios-auth", "http"), Path.Combine(stack._dataDirectory, "local", "auth"), token);
            stack.Api = stack._app.CreateHttpClient("helios-api");
            Assert.Equal(HttpStatusCode.Unauthorized, (await stack.Api.GetAsync("/Patient", token)).StatusCode);
            stack.Api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", accessToken);
            return stack;
        }

        /// <summary>Waits until the spans received so far satisfy <paramref name="done"/>, and returns them.</summary>
        public async Task<List<ReceivedSpan>> WaitForSpansAsync(Func<List<ReceivedSpan>, bool> done)
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (true)
            {
                var spans = _telemetry.Spans.ToList();
                if (done(spans) || DateTime.UtcNow > deadline)
                {
                    return spans;
                }

                await Task.Delay(250, CancellationToken);
            }
        }

        public Task WaitForSeedAsync() =>
            _app.ResourceNotifications.WaitForResourceAsync("helios-seed", KnownResourceStates.Finished, CancellationToken).WaitAsync(s_timeout, CancellationToken);

        public async Task<int> CountAsync(string type) =>
            JsonDocument.Parse(await Api.GetStringAsync($"/{type}?_summary=count", CancellationToken)).RootElement.GetProperty("total").GetInt32();

        /// <summary>The Helios.Worker processes of this stack (their S3 endpoint is this stack's).</summary>
        public List<System.Diagnostics.Process> WorkerProcesses() => Processes("Helios.Worker");

        /// <summary>The Helios.Api processes of this stack (the one-shot seed has ended by then).</summary>
        public List<System.Diagnostics.Process> ApiProcesses() => Processes("Helios.Api");

        private List<System.Diagnostics.Process> Processes(string name)
        {
            var files = _app.GetEndpoint("helios-files", "http").ToString().TrimEnd('/');
            return [.. System.Diagnostics.Process.GetProcessesByName(name).Where(p =>
            {
                try
                {
                    return File.ReadAllText($"/proc/{p.Id}/environ").Split('\0').Contains("Helios__Export__S3__ServiceUrl=" + files);
                }
                catch (IOException)
                {
                    return false;
                }
            })];
        }

        /// <summary>Runs an export to the end and downloads every file; <paramref name="whileRunning"/> runs once,
        /// after the first poll that reports progress.</summary>
        public async Task<Dictionary<string, List<string>>> ExportAsync(string path, Func<Task>? whileRunning = null)
        {
            var token = CancellationToken;
            var kickoff = new HttpRequestMessage(HttpMethod.Get, path);
            kickoff.Headers.TryAddWithoutValidation("Prefer", "respond-async");
            var accepted = await Api.SendAsync(kickoff, token);
            Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
            var status = accepted.Content.Headers.ContentLocation!;
            LastJobId = status.Segments[^1];
            JsonElement manifest;
            while (true)
            {
                await Task.Delay(TimeSpan.FromSeconds(1.1), token);
                var poll = await Api.GetAsync(status, token);
                if (poll.StatusCode == HttpStatusCode.OK)
                {
                    Assert.Null(whileRunning); // the export ended before the action could run
                    manifest = JsonDocument.Parse(await poll.Content.ReadAsStringAsync(token)).RootElement.Clone();
                    break;
                }

                Assert.True(poll.StatusCode == HttpStatusCode.Accepted, $"status {(int)poll.StatusCode}: {await poll.Content.ReadAsStringAsync(token)}");
                if (whileRunning is not null && poll.Headers.TryGetValues("X-Progress", out var progress) && progress.First().Contains("complete", StringComparison.Ordinal))
                {
                    await whileRunning();
                    whileRunning = null;
                }
            }

            var ids = new Dictionary<string, List<string>>();
            foreach (var file in manifest.GetProperty("output").EnumerateArray())
            {
                // Through the Api's file route, which sends the client on to a presigned URL of the S3 store.
                var text = await Api.GetStringAsync(file.GetProperty("url").GetString(), token);
                foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                {
                    var resource = JsonDocument.Parse(line).RootElement;
                    var type = resource.GetProperty("resourceType").GetString()!;
                    (ids.TryGetValue(type, out var list) ? list : ids[type] = []).Add(resource.GetProperty("id").GetString()!);
                }
            }

            return ids;
        }

        public async ValueTask DisposeAsync()
        {
            Api?.Dispose();
            if (_app is not null)
            {
                await _app.StopAsync(CancellationToken.None);
                await _app.DisposeAsync();
            }

            _cts.Dispose();
            _telemetry.Dispose();
            try
            {
                Directory.Delete(_dataDirectory, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // best effort: PostgreSQL's files belong to its OS user
            }
        }

        /// <summary>A token for the development client the authorization server made on first start (its private
        /// key is under the data directory): a private_key_jwt assertion to the token endpoint, as a bulk client does.</summary>
        private static async Task<string> GetDevTokenAsync(HttpClient http, Uri issuer, string keyDirectory, CancellationToken cancellationToken)
        {
            using var rsa = RSA.Create();
            rsa.ImportFromPem(await File.ReadAllTextAsync(Path.Combine(keyDirectory, "helios-dev.private.pem"), cancellationToken));
            var kid = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(keyDirectory, "helios-dev.jwks.json"), cancellationToken))
                .RootElement.GetProperty("keys")[0].GetProperty("kid").GetString();
            var discovery = JsonDocument.Parse(await http.GetStringAsync(new Uri(issuer, ".well-known/openid-configuration"), cancellationToken)).RootElement;
            var tokenEndpoint = discovery.GetProperty("token_endpoint").GetString()!;
            var client = new OidcClient("helios-dev", [], rsa, kid);
            var response = await http.PostAsync(tokenEndpoint, new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["grant_type"] = "client_credentials",
                ["scope"] = "system/*.cruds",
                ["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ["client_assertion"] = client.CreateAssertion("helios-dev", tokenEndpoint, TimeSpan.FromMinutes(4), Guid.NewGuid().ToString("N")),
            }), cancellationToken);
            var body = await response.Content.ReadAsStringAsync(cancellationToken);
            Assert.True(response.IsSuccessStatusCode, $"token: {(int)response.StatusCode} {body}");
            return JsonDocument.Parse(body).RootElement.GetProperty("access_token").GetString()!;
        }
    }
}
