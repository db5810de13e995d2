using System.Collections;
using Hl7.Fhir.Model;

namespace Helios.Storage.Indexing;

/// <summary>Runs the program over Firely POCOs (the REST write path).</summary>
internal sealed partial class ElementPath
{
    public void Select(Base root, List<Base> output)
    {
        Walk(root, 0, output);
    }

    private void Walk(Base node, int stepIndex, List<Base> output)
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
                if (!node.TryGetValue(step.Name, out var value) || value is null)
                {
                    return;
                }

                if (value is Base single)
                {
                    Walk(single, stepIndex + 1, output);
                }
                else if (value is IEnumerable list)
                {
                    foreach (var item in list)
                    {
                        if (item is Base b)
                        {
                            Walk(b, stepIndex + 1, output);
                        }
                    }
                }

                return;
            case StepKind.OfType:
                if (IsOfType(node, step.Name))
                {
                    Walk(node, stepIndex + 1, output);
                }

                return;
            case StepKind.ResolveIs:
                if (node is ResourceReference reference && ReferenceTargetType(reference) == step.Name)
                {
                    Walk(node, stepIndex + 1, output);
                }

                return;
            case StepKind.WhereEquals:
                if (node.TryGetValue(step.Name, out var field) && field is PrimitiveType primitive
                    && string.Equals(primitive.ToString(), step.Literal, StringComparison.Ordinal))
                {
                    Walk(node, stepIndex + 1, output);
                }

                return;
        }
    }

    private static bool IsOfType(Base node, string fhirType) => fhirType switch
    {
        "Quantity" => node is Quantity,
        _ => string.Equals(node.TypeName, fhirType, StringComparison.Ordinal),
    };

    internal static string? ReferenceTargetType(ResourceReference reference)
    {
        if (!string.IsNullOrEmpty(reference.Type))
        {
            return reference.Type;
        }

        return TargetTypeOf(reference.Reference);
    }

    private static string? TargetTypeOf(string? r)
    {
        if (string.IsNullOrEmpty(r) || r[0] == '#')
        {
            return null;
        }

        var parts = r.Split('/');
        // [base/]Type/id[/_history/v]
        var historyAt = Array.IndexOf(parts, "_history");
        var end = historyAt > 0 ? historyAt : parts.Length;
        return end >= 2 ? parts[end - 2] : null;
    }
}
