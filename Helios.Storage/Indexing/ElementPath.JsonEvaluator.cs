namespace Helios.Storage.Indexing;

/// <summary>Runs the program over JSON (the bulk load path).</summary>
internal sealed partial class ElementPath
{
    /// <summary>The same program over JSON (see <see cref="Fhir.JsonResource"/>): yields the nodes the POCO walk would
    /// yield, except primitives without a value (they index nothing).</summary>
    public void Select(JsonNode root, List<JsonNode> output) => Walk(root, 0, output);

    private void Walk(JsonNode node, int stepIndex, List<JsonNode> output)
    {
        if (stepIndex == _steps.Count)
        {
            output.Add(node);
            return;
        }

        var step = _steps[stepIndex];
        switch (step.Kind)
        {
            case StepKind.Child:
                if (node.Value.ValueKind != System.Text.Json.JsonValueKind.Object || node.Type.Element(step.Name) is not { } element)
                {
                    return;
                }

                if (element.IsChoice)
                {
                    foreach (var property in node.Value.EnumerateObject())
                    {
                        var name = property.Name;
                        if (name.Length > step.Name.Length && name.StartsWith(step.Name, StringComparison.Ordinal) && char.IsUpper(name[step.Name.Length])
                            && node.Type.ChoiceElement(name) is { } choice)
                        {
                            WalkValues(property.Value, choice.Type, stepIndex + 1, output);
                        }
                    }
                }
                else if (node.Value.TryGetProperty(step.Name, out var value))
                {
                    WalkValues(value, element.IsResource ? null : element.Type, stepIndex + 1, output);
                }

                return;
            case StepKind.OfType:
                if (step.Name == "Quantity" ? node.Type.IsQuantity : string.Equals(node.Type.Name, step.Name, StringComparison.Ordinal))
                {
                    Walk(node, stepIndex + 1, output);
                }

                return;
            case StepKind.ResolveIs:
                if (node.Type.Name == "Reference" && ReferenceTargetType(node.Value) == step.Name)
                {
                    Walk(node, stepIndex + 1, output);
                }

                return;
            case StepKind.WhereEquals:
                if (node.Value.ValueKind == System.Text.Json.JsonValueKind.Object && node.Value.TryGetProperty(step.Name, out var field)
                    && string.Equals(JsonNode.PrimitiveText(field), step.Literal, StringComparison.Ordinal))
                {
                    Walk(node, stepIndex + 1, output);
                }

                return;
        }
    }

    private void WalkValues(System.Text.Json.JsonElement value, Fhir.FhirJsonType? type, int stepIndex, List<JsonNode> output)
    {
        if (value.ValueKind == System.Text.Json.JsonValueKind.Array)
        {
            foreach (var item in value.EnumerateArray())
            {
                WalkValue(item, type, stepIndex, output);
            }
        }
        else
        {
            WalkValue(value, type, stepIndex, output);
        }
    }

    private void WalkValue(System.Text.Json.JsonElement value, Fhir.FhirJsonType? type, int stepIndex, List<JsonNode> output)
    {
        if (value.ValueKind == System.Text.Json.JsonValueKind.Null)
        {
            return;
        }

        if (type is null)
        {
            if (value.ValueKind != System.Text.Json.JsonValueKind.Object || !value.TryGetProperty("resourceType", out var rt)
                || rt.ValueKind != System.Text.Json.JsonValueKind.String || Fhir.FhirJsonType.ForName(rt.GetString()!) is not { IsResource: true } resourceType)
            {
                return;
            }

            type = resourceType;
        }

        Walk(new JsonNode(value, type), stepIndex, output);
    }

    /// <summary><see cref="ReferenceTargetType(Hl7.Fhir.Model.ResourceReference)"/> on a JSON Reference.</summary>
    internal static string? ReferenceTargetType(System.Text.Json.JsonElement reference)
    {
        if (reference.TryGetProperty("type", out var type) && type.ValueKind == System.Text.Json.JsonValueKind.String && type.GetString() is { Length: > 0 } t)
        {
            return t;
        }

        return reference.TryGetProperty("reference", out var r) && r.ValueKind == System.Text.Json.JsonValueKind.String
            ? TargetTypeOf(r.GetString())
            : null;
    }
}
