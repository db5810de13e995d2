using System.Globalization;
using Helios.Api.Fhir;
using Helios.Storage.Fhir;
using Hl7.Fhir.Model;

namespace Helios.Api.Export;

/// <summary>Reads the kick-off parameters of a POSTed <c>Parameters</c> resource as name/value text pairs.</summary>
public static class ExportParametersBody
{
    public static IEnumerable<KeyValuePair<string, string>> Read(string body)
    {
        ArgumentNullException.ThrowIfNull(body);
        Resource resource;
        try
        {
            resource = FhirJson.ParseResource(System.Text.Encoding.UTF8.GetBytes(body));
        }
        catch (FhirParseException ex)
        {
            throw new FhirOperationException(400, "The $export body is not a valid Parameters resource: " + ex.Message, OperationOutcome.IssueType.Invalid);
        }

        if (resource is not Parameters parameters)
        {
            throw new FhirOperationException(400, $"The $export body must be a Parameters resource, not {resource.TypeName}.", OperationOutcome.IssueType.Invalid);
        }

        var pairs = new List<KeyValuePair<string, string>>();
        foreach (var parameter in parameters.Parameter)
        {
            var value = parameter.Value switch
            {
                null => null,
                ResourceReference reference => reference.Reference,
                Instant instant => instant.Value?.ToString("o", CultureInfo.InvariantCulture) ?? instant.ToString(),
                PrimitiveType primitive => primitive.ToString(),
                _ => null,
            };
            if (value is null)
            {
                throw new FhirOperationException(400, $"The $export parameter '{parameter.Name}' has no usable value[x].", OperationOutcome.IssueType.Invalid);
            }

            pairs.Add(new KeyValuePair<string, string>(parameter.Name ?? string.Empty, value));
        }

        return pairs;
    }
}
