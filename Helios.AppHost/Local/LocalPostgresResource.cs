namespace Helios.AppHost.Local;

/// <summary>PostgreSQL run from the installed server binaries (<c>local/pg-run.sh</c>), for machines without a
/// container runtime: its connection string names the <c>postgres</c> database and user, on the allocated port.</summary>
public sealed class LocalPostgresResource(string name, string workingDirectory, ParameterResource password)
    : ExecutableResource(name, "bash", workingDirectory), IResourceWithConnectionString
{
    public const string EndpointName = "tcp";

    public ParameterResource Password { get; } = password;

    public EndpointReference Endpoint => new(this, EndpointName);

    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
        $"Host={Endpoint.Property(EndpointProperty.Host)};Port={Endpoint.Property(EndpointProperty.Port)};Username=postgres;Password={Password};Database=postgres");
}
