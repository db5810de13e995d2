using System.Net;
using Helios.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace Helios.Api.Tests;

/// <summary>
/// SQL text through <c>_typeFilter</c> end to end on PostgreSQL, where the export's COPY inlines search values as
/// literals: each value carries a marker no stored resource holds, so whatever quotes, comments, dollar quotes or
/// statements surround it, the filtered types export nothing, the unfiltered ones export everything, and the store is
/// unchanged.
/// </summary>
public sealed class TypeFilterInjectionTests(PostgresS3ExportFactory factory) : IClassFixture<PostgresS3ExportFactory>
{
    private static readonly string[] s_sql =
    [
        "'", "''", "\\", "\\'", "$$", "$x$", "--", "/*", "*/", ";", "' OR '1'='1", "') OR ('a'='a", "'; DROP TABLE resources; --",
        "'; DELETE FROM export_jobs; --", "\" OR 1=1 --", "E'\\x27'", "%", "_", "' UNION SELECT json FROM resources --", "\\\\'", "$1", "@p",
    ];

    [Fact]
    public async Task SqlTextInTypeFilterValues_MatchesNothing_AndChangesNothing()
    {
        await ExportSeed.EnsureAsync(factory);
        var store = factory.Services.GetRequiredService<IResourceStore>();
        var before = await store.CountByTypeAsync(CancellationToken.None);
        var client = new ExportClient(factory.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { AllowAutoRedirect = false }), ExportDiagnostics.For(factory));
        var random = new Random(13);
        for (var export = 0; export < 6; export++)
        {
            string Value() => string.Concat(Enumerable.Range(0, random.Next(1, 4)).Select(_ => s_sql[random.Next(s_sql.Length)])).Insert(0, "qzxjv");
            var filters = new[]
            {
                $"Patient?name={Uri.EscapeDataString(Value())}",
                $"Patient?family:exact={Uri.EscapeDataString(Value())}",
                $"Patient?address-city:contains={Uri.EscapeDataString(Value())}",
                $"Patient?identifier={Uri.EscapeDataString(Value() + "|" + Value())}",
                $"Organization?name={Uri.EscapeDataString(Value())}",
            };
            var query = "_type=Patient,Organization,Practitioner&" + string.Join("&", filters.Select(f => "_typeFilter=" + Uri.EscapeDataString(f)));
            var status = await client.KickoffAsync("/$export?" + query);
            var manifest = await client.WaitForManifestAsync(status);
            var lines = await client.DownloadOutputAsync(manifest);
            Assert.False(lines.ContainsKey("Patient"), $"a Patient matched {string.Join(" ", filters)}");
            Assert.False(lines.ContainsKey("Organization"), $"an Organization matched {string.Join(" ", filters)}");
            Assert.Equal(before["Practitioner"], lines["Practitioner"].Count);
        }

        Assert.Equal(before, await store.CountByTypeAsync(CancellationToken.None));
        Assert.Equal(HttpStatusCode.OK, (await client.Api.GetAsync("/Patient?_count=1")).StatusCode);
    }
}
