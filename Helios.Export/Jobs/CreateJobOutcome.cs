namespace Helios.Export.Jobs;

public enum CreateJobOutcome
{
    Created,
    ClientLimitReached,
    TenantLimitReached,
}
