using System.Globalization;
using System.Text.Json.Nodes;
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
        if (string.IsNullOrWhiteSpace(body) || IsEmptyParameters(body))
        {
            // No body, {"resourceType":"Parameters"} (parameter is 0..*) or an empty parameter array, which a widely
            // used bulk client sends on every POST kick-off: a kick-off without parameters.
            return [];
        }

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
                Coding coding => coding.Code,
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

    /// <summary>A Parameters resource with no parameter: only <c>resourceType</c> (and <c>id</c>/<c>meta</c>), with
    /// <c>parameter</c> absent or an empty array.</summary>
    private static bool IsEmptyParameters(string body)
    {
        try
        {
            if (JsonNode.Parse(body) is not JsonObject root || root["resourceType"]?.GetValueKind() != System.Text.Json.JsonValueKind.String ||
                root["resourceType"]!.GetValue<string>() != "Parameters")
            {
                return false;
            }

            return root.All(p => p.Key is "resourceType" or "id" or "meta" || (p.Key == "parameter" && p.Value is JsonArray { Count: 0 }));
        }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or ArgumentException or InvalidOperationException)
        {
            return false; // malformed JSON or a property named twice: the strict parse reports it
        }
    }
}
