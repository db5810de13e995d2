using System.IO.Compression;
using System.Text.Json;

namespace Helios.Api.Tests;

/// <summary>
/// Finds <c>shared/data/synthea-r4-100</c> beside the repository (or at <c>HELIOS_SHARED_DATA</c>). Tests that need it
/// are skipped with a clear message when it is absent; the synthetic generator covers the rest.
/// </summary>
public static class SyntheaData
{
    public static readonly string? BundleDirectory = Find("synthea-r4-100");

    /// <summary>The US Core HIV set: provider batches with ifNoneExist, patient transactions with conditional references.</summary>
    public static readonly string? HivDirectory = Find("synthea-uscore-hiv-79") is { } b ? Path.GetDirectoryName(b) : null;

    public static string SkipReason =>
        "The synthea-r4-100 data set was not found (looked for shared/data/synthea-r4-100/bundles above the test directory and at HELIOS_SHARED_DATA).";

    private static string? Find(string set)
    {
        var configured = Environment.GetEnvironmentVariable("HELIOS_SHARED_DATA");
        if (!string.IsNullOrEmpty(configured))
        {
            var candidate = Path.Combine(configured, set, "bundles");
            return Directory.Exists(candidate) ? candidate : null;
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", "data", set, "bundles");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>Transaction bundles in load order: organizations and practitioners, then the 100 patients. (The group
    /// file is a bare Group whose members are urn:uuid identifiers, not a bundle.)</summary>
    public static IEnumerable<string> BundleFiles()
    {
        var files = Directory.GetFiles(BundleDirectory!, "*.json.gz").Order(StringComparer.Ordinal).ToList();
        return files.Where(f => Path.GetFileName(f).StartsWith("hospital", StringComparison.Ordinal) || Path.GetFileName(f).StartsWith("practitioner", StringComparison.Ordinal))
            .Concat(files.Where(f => Path.GetFileName(f).StartsWith("patient-", StringComparison.Ordinal)));
    }

    public static string ReadText(string file)
    {
        using var gz = new GZipStream(File.OpenRead(file), CompressionMode.Decompress);
        using var reader = new StreamReader(gz);
        return reader.ReadToEnd();
    }

    /// <summary>Every resource of every bundle, read with System.Text.Json (independently of the server's code).</summary>
    public static List<JsonElement> AllResources() =>
        BundleFiles().SelectMany(f =>
        {
            using var doc = JsonDocument.Parse(ReadText(f));
            return doc.RootElement.GetProperty("entry").EnumerateArray().Select(e => e.GetProperty("resource").Clone()).ToList();
        }).ToList();
}

public sealed class HivDataFactAttribute : FactAttribute
{
    public HivDataFactAttribute()
    {
        if (SyntheaData.HivDirectory is null)
        {
            Skip = "The synthea-uscore-hiv-79 data set was not found (shared/data above the test directory, or HELIOS_SHARED_DATA).";
        }
    }
}

public sealed class SyntheaFactAttribute : FactAttribute
{
    public SyntheaFactAttribute()
    {
        if (SyntheaData.BundleDirectory is null)
        {
            Skip = SyntheaData.SkipReason;
        }
    }
}
