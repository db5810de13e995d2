using System.Collections;
using Hl7.Fhir.Model;

namespace Helios.Storage.Indexing;

/// <summary>
/// A search parameter expression compiled to a list of navigation programs over Firely POCOs. It covers the
/// FHIRPath subset the R4 search parameter definitions use (paths, unions, <c>as</c>/<c>ofType</c>,
/// <c>where(resolve() is T)</c>, <c>where(field = 'literal')</c>); anything else is left to the SDK's FHIRPath
/// engine by <see cref="SearchParameterRegistry"/>.
/// </summary>
internal sealed class ElementPath
{
    private readonly IReadOnlyList<Step> _steps;

    private ElementPath(IReadOnlyList<Step> steps) => _steps = steps;

    /// <summary>Whether both programs take the same steps (and so select the same nodes).</summary>
    public bool SameAs(ElementPath other) => _steps.SequenceEqual(other._steps);

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

    /// <summary><see cref="ReferenceTargetType(ResourceReference)"/> on a JSON Reference.</summary>
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

    /// <summary>Compiles the branches of <paramref name="expression"/> rooted at <paramref name="resourceType"/>
    /// (or at <c>Resource</c>/<c>DomainResource</c>). Returns false when the expression uses anything outside the
    /// supported subset.</summary>
    public static bool TryCompile(string expression, string resourceType, out List<ElementPath> paths)
    {
        paths = [];
        foreach (var branch in SplitTopLevel(expression, '|'))
        {
            var tokens = Tokenize(branch);
            if (tokens is null)
            {
                return false;
            }

            var parser = new Parser(tokens);
            var steps = new List<Step>();
            string? root;
            try
            {
                root = parser.ParseBranch(steps);
            }
            catch (FormatException)
            {
                return false;
            }

            if (root is null)
            {
                return false;
            }

            if (root == resourceType || root is "Resource" or "DomainResource")
            {
                paths.Add(new ElementPath(steps));
            }
        }

        return true;
    }

    private static IEnumerable<string> SplitTopLevel(string expression, char separator)
    {
        var depth = 0;
        var inString = false;
        var start = 0;
        for (var i = 0; i < expression.Length; i++)
        {
            var c = expression[i];
            if (c == '\'')
            {
                inString = !inString;
            }
            else if (!inString && c == '(')
            {
                depth++;
            }
            else if (!inString && c == ')')
            {
                depth--;
            }
            else if (!inString && depth == 0 && c == separator)
            {
                yield return expression[start..i].Trim();
                start = i + 1;
            }
        }

        yield return expression[start..].Trim();
    }

    private static List<string>? Tokenize(string text)
    {
        var tokens = new List<string>();
        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
            }
            else if (char.IsLetter(c) || c == '_')
            {
                var start = i;
                while (i < text.Length && (char.IsLetterOrDigit(text[i]) || text[i] == '_' || text[i] == '-'))
                {
                    i++;
                }

                tokens.Add(text[start..i]);
            }
            else if (c == '\'')
            {
                var end = text.IndexOf('\'', i + 1);
                if (end < 0)
                {
                    return null;
                }

                tokens.Add(text[i..(end + 1)]);
                i = end + 1;
            }
            else if (c is '.' or '(' or ')' or '=')
            {
                tokens.Add(c.ToString());
                i++;
            }
            else
            {
                return null;
            }
        }

        return tokens;
    }

    private sealed class Parser(List<string> tokens)
    {
        private int _pos;

        private string? Peek => _pos < tokens.Count ? tokens[_pos] : null;

        private string Next() => _pos < tokens.Count ? tokens[_pos++] : throw new FormatException("unexpected end");

        private void Expect(string token)
        {
            if (Next() != token)
            {
                throw new FormatException($"expected {token}");
            }
        }

        /// <summary>branch := primary ('.' postfix)* ('as' Type)?   primary := '(' branch ')' | Ident</summary>
        public string? ParseBranch(List<Step> steps)
        {
            var root = ParseUnit(steps);
            if (_pos != tokens.Count)
            {
                throw new FormatException("trailing tokens");
            }

            return root;
        }

        private string? ParseUnit(List<Step> steps)
        {
            string? root;
            if (Peek == "(")
            {
                Next();
                root = ParseUnit(steps);
                Expect(")");
            }
            else
            {
                root = Next();
                if (!char.IsUpper(root[0]))
                {
                    throw new FormatException("path must start with a type");
                }
            }

            while (Peek == ".")
            {
                Next();
                var name = Next();
                if (Peek == "(")
                {
                    Next();
                    ParseFunction(name, steps);
                }
                else
                {
                    steps.Add(new Step(StepKind.Child, name, null));
                }
            }

            if (Peek == "as")
            {
                Next();
                steps.Add(new Step(StepKind.OfType, Next(), null));
            }

            return root;
        }

        private void ParseFunction(string name, List<Step> steps)
        {
            switch (name)
            {
                case "as" or "ofType":
                    steps.Add(new Step(StepKind.OfType, Next(), null));
                    Expect(")");
                    return;
                case "where":
                    if (Peek == "resolve")
                    {
                        Next();
                        Expect("(");
                        Expect(")");
                        Expect("is");
                        steps.Add(new Step(StepKind.ResolveIs, Next(), null));
                        Expect(")");
                        return;
                    }

                    var field = Next();
                    Expect("=");
                    var literal = Next();
                    if (literal.Length < 2 || literal[0] != '\'')
                    {
                        throw new FormatException("literal expected");
                    }

                    steps.Add(new Step(StepKind.WhereEquals, field, literal[1..^1]));
                    Expect(")");
                    return;
                default:
                    throw new FormatException($"unsupported function {name}");
            }
        }
    }

    private enum StepKind
    {
        Child,
        OfType,
        ResolveIs,
        WhereEquals,
    }

    private sealed record Step(StepKind Kind, string Name, string? Literal);
}
