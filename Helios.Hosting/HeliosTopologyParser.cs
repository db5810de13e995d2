namespace Helios.Hosting;

public static class HeliosTopologyParser
{
    public static HeliosTopology Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "embedded" => HeliosTopology.Embedded,
        "postgres-s3" => HeliosTopology.PostgresS3,
        _ => throw new InvalidOperationException($"Helios:Topology '{value}' is not valid. Allowed values: embedded, postgres-s3."),
    };
}
