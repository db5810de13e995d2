using System.Net;
using System.Text.Json;

namespace Helios.Api.Tests;

/// <summary>Path traversal, encoded separators and odd ids on the status and file routes: each is a 404 (or 400)
/// with an OperationOutcome; nothing outside the export's own files is served, and nothing is a 500.</summary>
public sealed class RouteProbeTests(EmbeddedExportFactory factory) : IClassFixture<EmbeddedExportFactory>
{
    public static TheoryData<string> Probes => new()
    {
        "/$export-status/..%2F..%2Fhelios.db",
        "/$export-status/%2E%2E",
        "/$export-status/..",
        "/$export-status/' OR '1'='1",
        "/$export-status/" + new string('a', 5000),
        "/$export-file/x/..%2F..%2Fhelios.db",
        "/$export-file/..%2F..%2F/helios.db",
        "/$export-file/%2E%2E/%2E%2E%2Fhelios.db",
        "/$export-file/x/%2Fetc%2Fpasswd",
        "/$export-file/x/..%5C..%5Chelios.db",
        "/$export-file/x/.hidden.tmp",
        "/$export-file/x/'; DROP TABLE export_jobs; --",
    };

    [Theory]
    [MemberData(nameof(Probes))]
    public async Task StatusAndFileRoutes_RefuseTraversal_WithAnOperationOutcome(string path)
    {
        var client = factory.CreateClient();
        foreach (var method in new[] { HttpMethod.Get, HttpMethod.Delete })
        {
            if (method == HttpMethod.Delete && !path.StartsWith("/$export-status/", StringComparison.Ordinal))
            {
                continue;
            }

            var response = await client.SendAsync(new HttpRequestMessage(method, path));
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.BadRequest, $"{method} {path}: {(int)response.StatusCode} {body}");
            Assert.Equal("OperationOutcome", JsonDocument.Parse(body).RootElement.GetProperty("resourceType").GetString());
            Assert.DoesNotContain("SQLite", body, StringComparison.Ordinal);
        }

        // The job table is still there.
        var kickoff = await new ExportClient(client).SendKickoffAsync("/$export?_type=Patient");
        Assert.Equal(HttpStatusCode.Accepted, kickoff.StatusCode);
    }
}
