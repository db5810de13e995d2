using System.Globalization;
using System.Text;
using Helios.Hosting;
using Helios.Storage;
using Helios.Storage.Fhir;
using Helios.Storage.Indexing;
using Helios.Storage.Loading;
using Helios.Storage.Synthetic;

namespace Helios.Api.Cli;

/// <summary>
/// Command-line verbs of Helios.Api (run instead of the web server):
/// <c>load PATH...</c> bulk-loads NDJSON files or folders (.ndjson, .ndjson.gz) into the configured store;
/// <c>generate --patients N [--seed S] [--output FILE]</c> writes deterministic synthetic NDJSON;
/// <c>seed [--patients N] [--group-id ID]</c> stores N synthetic patients and a Group of them, once (the AppHost's first
/// start).
/// </summary>
internal static class CommandLine
{
    public static bool IsCommand(string[] args) => args.Length > 0 && args[0] is "load" or "generate" or "seed";

    public static async Task<int> RunAsync(string[] args)
    {
        var rest = args.Skip(1).ToArray();
        return args[0] switch
        {
            "load" => await LoadAsync(rest),
            "generate" => await GenerateAsync(rest),
            "seed" => await SeedAsync(rest),
            _ => 2,
        };
    }

    private static async Task<int> LoadAsync(string[] args)
    {
        var deferIndexes = args.Contains("--defer-indexes");
        var paths = args.Where(a => !a.StartsWith("--", StringComparison.Ordinal)).ToList();
        var configArgs = args.Where(a => a.StartsWith("--", StringComparison.Ordinal) && a != "--defer-indexes").ToArray();
        if (paths.Count == 0)
        {
            await Console.Error.WriteLineAsync("usage: Helios.Api load PATH... [--defer-indexes] [--Helios:DataDirectory=DIR | --Helios:Topology=postgres-s3 --ConnectionStrings:helios-db=...]");
            return 2;
        }

        var builder = Host.CreateApplicationBuilder(configArgs);
        builder.AddHeliosStorage();
        using var host = builder.Build();
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cts.Cancel();
        };
        await host.Services.MigrateHeliosStorageAsync(cts.Token);
        var loader = new NdjsonBulkLoader(host.Services.GetRequiredService<IResourceStore>(), host.Services.GetRequiredService<IndexExtractor>())
        {
            DeferIndexesOf = deferIndexes ? host.Services.GetRequiredService<ISchemaMigrator>() : null,
        };
        var result = await loader.LoadFilesAsync(paths, cts.Token);
        foreach (var error in result.Errors.Take(20))
        {
            await Console.Error.WriteLineAsync($"{error.Source}:{error.Line}: {error.Message}");
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"loaded {result.Loaded} resources in {result.Elapsed.TotalSeconds:F1} s ({result.ResourcesPerSecond:F0}/s); {result.Failed} lines rejected"));
        return result.Failed == 0 ? 0 : 1;
    }

    /// <summary>Sample data for a new stack: the generator's patients (all their resources) and a Group of them, unless
    /// that Group already exists (a second start seeds nothing).</summary>
    private static async Task<int> SeedAsync(string[] args)
    {
        var patients = 300;
        var groupId = "helios-sample";
        var configArgs = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--patients" when i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var n):
                    patients = n;
                    i++;
                    break;
                case "--group-id" when i + 1 < args.Length:
                    groupId = args[++i];
                    break;
                case var other when other.StartsWith("--", StringComparison.Ordinal) && other.Contains('=', StringComparison.Ordinal):
                    configArgs.Add(other);
                    break;
                default:
                    await Console.Error.WriteLineAsync("usage: Helios.Api seed [--patients N] [--group-id ID] [--Helios:Topology=... --ConnectionStrings:helios-db=...]");
                    return 2;
            }
        }

        var builder = Host.CreateApplicationBuilder([.. configArgs]);
        builder.AddHeliosStorage();
        using var host = builder.Build();
        await host.Services.MigrateHeliosStorageAsync(CancellationToken.None);
        var store = host.Services.GetRequiredService<IResourceStore>();
        if (await store.ReadAsync("Group", groupId, CancellationToken.None) is { IsDeleted: false })
        {
            Console.WriteLine($"Group/{groupId} is already there: nothing seeded. Export it with GET /Group/{groupId}/$export.");
            return 0;
        }

        var members = new List<string>();
        long written = 0;
        foreach (var chunk in new SyntheticDataGenerator(seed: 42).Generate(patients).Chunk(2000))
        {
            members.AddRange(chunk.OfType<Hl7.Fhir.Model.Patient>().Select(p => p.Id!));
            await store.WriteAsync([.. chunk.Select(r => ResourceWrite.Update(r))], CancellationToken.None);
            written += chunk.Length;
        }

        var group = new Hl7.Fhir.Model.Group
        {
            Id = groupId, Type = Hl7.Fhir.Model.Group.GroupType.Person, Actual = true, Name = "Helios sample patients",
            Member = [.. members.Select(id => new Hl7.Fhir.Model.Group.MemberComponent { Entity = new Hl7.Fhir.Model.ResourceReference("Patient/" + id) })],
        };
        await store.WriteAsync([ResourceWrite.Update(group)], CancellationToken.None);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Seeded {members.Count} patients ({written} resources) and Group/{groupId}. Export them with GET /Group/{groupId}/$export."));
        return 0;
    }

    private static async Task<int> GenerateAsync(string[] args)
    {
        var patients = 100;
        var seed = 42;
        string? output = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--patients" when i + 1 < args.Length:
                    patients = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--seed" when i + 1 < args.Length:
                    seed = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--output" when i + 1 < args.Length:
                    output = args[++i];
                    break;
                default:
                    await Console.Error.WriteLineAsync("usage: Helios.Api generate [--patients N] [--seed S] [--output FILE.ndjson]");
                    return 2;
            }
        }

        await using var stream = output is null ? Console.OpenStandardOutput() : File.Create(output);
        await using var writer = new StreamWriter(stream, new UTF8Encoding(false));
        long count = 0;
        foreach (var resource in new SyntheticDataGenerator(seed).Generate(patients))
        {
            await writer.WriteLineAsync(FhirJson.Serialize(resource));
            count++;
        }

        if (output is not null)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {count} resources for {patients} patients to {output}"));
        }

        return 0;
    }
}
