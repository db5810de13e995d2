using System.ComponentModel.DataAnnotations;

namespace Helios.Hosting;

/// <summary>Settings under <c>Helios</c>.</summary>
public sealed class HeliosOptions
{
    public const string SectionName = "Helios";

    /// <summary><c>embedded</c> (SQLite under <see cref="DataDirectory"/>) or <c>postgres-s3</c> (PostgreSQL from the
    /// <c>helios-db</c> connection string).</summary>
    [Required]
    public string Topology { get; set; } = "embedded";

    /// <summary>Where the embedded topology keeps its SQLite database and export files (created when missing),
    /// relative to the working directory unless absolute.</summary>
    [Required]
    public string DataDirectory { get; set; } = "./data";

    /// <summary><see cref="DataDirectory"/> as an absolute path: the one place it is resolved.</summary>
    public string DataDirectoryPath => Path.GetFullPath(string.IsNullOrWhiteSpace(DataDirectory) ? "./data" : DataDirectory);

    /// <summary>The embedded topology's SQLite database file.</summary>
    public string SqliteDatabasePath => Path.Combine(DataDirectoryPath, "helios.db");

    /// <summary>Public base URL used in links; by default taken from each request.</summary>
    public string? BaseUrl { get; set; }

    /// <summary>Largest accepted request body; larger bodies get 413.</summary>
    [Range(1024, long.MaxValue)]
    public long MaxRequestBodyBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Search page size when the client sends no <c>_count</c>.</summary>
    [Range(1, 1000)]
    public int DefaultPageSize { get; set; } = 20;
}
