namespace Helios.Export.Requests;

public enum ExportLevel
{
    System,
    Patient,
    Group,
}
