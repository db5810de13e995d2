namespace Helios.Hosting;

public enum HeliosTopology
{
    Embedded,
    PostgresS3,
}
