namespace Helios.Storage.Indexing;

/// <summary>Compiles the FHIRPath subset into step programs.</summary>
internal sealed partial class ElementPath
{
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
}
