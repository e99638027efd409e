using System.Globalization;

namespace ProxyOrleans.Inference.Tokenization.Jinja;

// Over 400 lines on purpose: the syntax tree and the recursive-descent parser of the Jinja subset read together,
// one grammar rule per method, in jinja2's order of precedence.

// Expressions.
internal abstract record Expr(int Line);
internal sealed record Literal(object? Value, int Line) : Expr(Line);
internal sealed record NameRef(string Name, int Line) : Expr(Line);
internal sealed record ListExpr(List<Expr> Items, int Line, bool IsTuple = false) : Expr(Line);
internal sealed record DictExpr(List<(Expr Key, Expr Value)> Items, int Line) : Expr(Line);
internal sealed record GetAttr(Expr Target, string Name, int Line) : Expr(Line);
internal sealed record GetItem(Expr Target, Expr Index, int Line) : Expr(Line);
internal sealed record SliceExpr(Expr Target, Expr? Start, Expr? Stop, Expr? Step, int Line) : Expr(Line);
internal sealed record CallExpr(Expr Target, List<Expr> Args, List<(string Name, Expr Value)> Kwargs, int Line) : Expr(Line);
internal sealed record FilterExpr(Expr Target, string Name, List<Expr> Args, List<(string Name, Expr Value)> Kwargs, int Line) : Expr(Line);
internal sealed record TestExpr(Expr Target, string Name, List<Expr> Args, bool Negated, int Line) : Expr(Line);
internal sealed record UnaryExpr(string Op, Expr Operand, int Line) : Expr(Line);
internal sealed record BinaryExpr(string Op, Expr Left, Expr Right, int Line) : Expr(Line);
internal sealed record CompareExpr(Expr First, List<(string Op, Expr Right)> Rest, int Line) : Expr(Line);
internal sealed record CondExpr(Expr Condition, Expr Then, Expr? Else, int Line) : Expr(Line);

// Statements.
internal abstract record Node(int Line);
internal sealed record TextNode(string Text, int Line) : Node(Line);
internal sealed record OutputNode(Expr Value, int Line) : Node(Line);
internal sealed record IfNode(List<(Expr Condition, List<Node> Body)> Branches, List<Node>? Else, int Line) : Node(Line);
internal sealed record ForNode(List<string> Targets, Expr Iterable, Expr? Filter, List<Node> Body, List<Node>? Else, int Line) : Node(Line);
internal sealed record SetNode(List<string> Targets, string? Attribute, Expr? Value, List<Node>? Body, int Line) : Node(Line);
internal sealed record MacroNode(string Name, List<(string Name, Expr? Default)> Parameters, List<Node> Body, int Line) : Node(Line);
internal sealed record LoopControlNode(bool IsBreak, int Line) : Node(Line);
internal sealed record FilterBlockNode(string Name, List<Expr> Args, List<Node> Body, int Line) : Node(Line);
internal sealed record ScopedBlockNode(List<Node> Body, int Line) : Node(Line);

/// <summary>
/// A recursive-descent parser for the Jinja subset that chat templates use, with jinja2's operator precedence:
/// conditional &lt; or &lt; and &lt; not &lt; comparisons/in &lt; + - &lt; ~ &lt; * / // % &lt; ** &lt; unary &lt;
/// postfix (attribute, item, call) and filters/tests.
/// </summary>
internal sealed class JinjaParser
{
    private static readonly HashSet<string> UnsupportedTags =
        ["include", "import", "from", "extends", "block", "call", "with", "do", "autoescape", "trans"];

    private readonly List<Segment> segments;
    private int segmentIndex;
    private List<Token> tokens = [];
    private int tokenIndex;

    private JinjaParser(List<Segment> segments) => this.segments = segments;

    public static List<Node> Parse(string source, JinjaOptions options)
    {
        var parser = new JinjaParser(JinjaLexer.Lex(source, options));
        var body = parser.ParseBody([], out string? end, out int line);
        if (end is not null) throw new JinjaException($"'{{% {end} %}}' on line {line} closes nothing", line);
        return body;
    }

    // Parses nodes until a statement whose tag is in endTags (returned in endTag, its tokens left current).
    private List<Node> ParseBody(HashSet<string> endTags, out string? endTag, out int endLine)
    {
        var nodes = new List<Node>();
        while (segmentIndex < segments.Count)
        {
            var seg = segments[segmentIndex++];
            switch (seg.Kind)
            {
                case SegmentKind.Text: nodes.Add(new TextNode(seg.Text, seg.Line)); break;
                case SegmentKind.Output:
                    Begin(seg);
                    nodes.Add(new OutputNode(ParseExpression(), seg.Line));
                    ExpectEnd();
                    break;
                case SegmentKind.Statement:
                    Begin(seg);
                    var tagToken = Next();
                    if (tagToken.Kind != TokenKind.Name) throw Error($"a statement tag must start with a name, not {tagToken}", tagToken);
                    string tag = tagToken.Text;
                    if (endTags.Contains(tag)) { endTag = tag; endLine = seg.Line; return nodes; }
                    nodes.Add(ParseStatement(tag, seg.Line));
                    break;
            }
        }
        endTag = null; endLine = 0;
        if (endTags.Count > 0)
            throw new JinjaException($"the template ends before '{{% {string.Join(" / ", endTags)} %}}'", segments.Count > 0 ? segments[^1].Line : 0);
        return nodes;
    }

    private Node ParseStatement(string tag, int line)
    {
        switch (tag)
        {
            case "if": return ParseIf(line);
            case "for": return ParseFor(line);
            case "set": return ParseSet(line);
            case "macro": return ParseMacro(line);
            case "break":
            case "continue":
                ExpectEnd();
                return new LoopControlNode(tag == "break", line);
            case "filter":
            {
                string name = ExpectName();
                var args = new List<Expr>();
                if (Accept("(")) ParseCallArgs(args, []);
                ExpectEnd();
                var body = ParseBody(["endfilter"], out _, out _);
                ExpectEnd();
                return new FilterBlockNode(name, args, body, line);
            }
            case "generation":
            {
                // transformers' AssistantTracker extension: marks assistant text for masks; the body renders as a
                // call block, so its {% set %}s stay inside.
                ExpectEnd();
                var body = ParseBody(["endgeneration"], out _, out _);
                ExpectEnd();
                return new ScopedBlockNode(body, line);
            }
            default:
                if (UnsupportedTags.Contains(tag) || !tag.StartsWith("end", StringComparison.Ordinal))
                    throw new JinjaUnsupportedException($"'{{% {tag} %}}'", line);
                throw new JinjaException($"'{{% {tag} %}}' on line {line} closes nothing", line);
        }
    }

    private Node ParseIf(int line)
    {
        var branches = new List<(Expr, List<Node>)>();
        var condition = ParseExpression();
        ExpectEnd();
        while (true)
        {
            var body = ParseBody(["elif", "else", "endif"], out string? end, out _);
            branches.Add((condition, body));
            if (end == "elif") { condition = ParseExpression(); ExpectEnd(); continue; }
            ExpectEnd();
            if (end == "else")
            {
                var elseBody = ParseBody(["endif"], out _, out _);
                ExpectEnd();
                return new IfNode(branches, elseBody, line);
            }
            return new IfNode(branches, null, line);
        }
    }

    private Node ParseFor(int line)
    {
        var targets = new List<string> { ExpectName() };
        while (Accept(",")) targets.Add(ExpectName());
        if (!(Peek() is { Kind: TokenKind.Name, Text: "in" })) throw Error($"expected 'in' in '{{% for %}}', got {Peek()}", Peek());
        Next();
        var iterable = ParseExpression(withCondition: false);
        Expr? filter = null;
        if (Peek() is { Kind: TokenKind.Name, Text: "if" }) { Next(); filter = ParseExpression(withCondition: false); }
        if (Peek() is { Kind: TokenKind.Name, Text: "recursive" }) throw new JinjaUnsupportedException("'{% for ... recursive %}'", line);
        ExpectEnd();
        var body = ParseBody(["else", "endfor"], out string? end, out _);
        ExpectEnd();
        List<Node>? elseBody = null;
        if (end == "else") { elseBody = ParseBody(["endfor"], out _, out _); ExpectEnd(); }
        return new ForNode(targets, iterable, filter, body, elseBody, line);
    }

    private Node ParseSet(int line)
    {
        var targets = new List<string> { ExpectName() };
        string? attribute = null;
        if (Accept(".")) attribute = ExpectName();
        else while (Accept(",")) targets.Add(ExpectName());
        if (Accept("="))
        {
            var value = ParseTuple();
            ExpectEnd();
            return new SetNode(targets, attribute, value, null, line);
        }
        ExpectEnd();
        var body = ParseBody(["endset"], out _, out _);
        ExpectEnd();
        return new SetNode(targets, attribute, null, body, line);
    }

    private Node ParseMacro(int line)
    {
        string name = ExpectName();
        Expect("(");
        var parameters = new List<(string, Expr?)>();
        while (!Accept(")"))
        {
            if (parameters.Count > 0) Expect(",");
            if (Accept(")")) break;
            string p = ExpectName();
            parameters.Add((p, Accept("=") ? ParseExpression() : null));
        }
        ExpectEnd();
        var body = ParseBody(["endmacro"], out _, out _);
        ExpectEnd();
        return new MacroNode(name, parameters, body, line);
    }

    // ---- expressions ----

    // "a, b" without brackets is a tuple (used by {% set x = a, b %}).
    private Expr ParseTuple()
    {
        var first = ParseExpression();
        if (!(Peek() is { Kind: TokenKind.Operator, Text: "," })) return first;
        var items = new List<Expr> { first };
        while (Accept(","))
        {
            if (Peek().Kind == TokenKind.End) break;
            items.Add(ParseExpression());
        }
        return new ListExpr(items, first.Line, IsTuple: true);
    }

    private Expr ParseExpression(bool withCondition = true)
    {
        var expr = ParseOr();
        if (!withCondition) return expr;
        while (Peek() is { Kind: TokenKind.Name, Text: "if" })
        {
            Next();
            var condition = ParseOr();
            Expr? otherwise = null;
            if (Peek() is { Kind: TokenKind.Name, Text: "else" }) { Next(); otherwise = ParseExpression(); }
            expr = new CondExpr(condition, expr, otherwise, expr.Line);
        }
        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (AcceptName("or")) left = new BinaryExpr("or", left, ParseAnd(), left.Line);
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (AcceptName("and")) left = new BinaryExpr("and", left, ParseNot(), left.Line);
        return left;
    }

    private Expr ParseNot()
    {
        var t = Peek();
        if (AcceptName("not")) return new UnaryExpr("not", ParseNot(), t.Line);
        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            var t = Peek();
            if (t.Kind == TokenKind.Operator && t.Text is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                Next();
                rest.Add((t.Text, ParseMath1()));
            }
            else if (t is { Kind: TokenKind.Name, Text: "in" }) { Next(); rest.Add(("in", ParseMath1())); }
            else if (t is { Kind: TokenKind.Name, Text: "not" } && PeekAt(1) is { Kind: TokenKind.Name, Text: "in" })
            {
                Next(); Next();
                rest.Add(("notin", ParseMath1()));
            }
            else break;
        }
        return rest.Count == 0 ? first : new CompareExpr(first, rest, first.Line);
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Peek() is { Kind: TokenKind.Operator, Text: "+" or "-" } t) { Next(); left = new BinaryExpr(t.Text, left, ParseConcat(), left.Line); }
        return left;
    }

    private Expr ParseConcat()
    {
        var left = ParseMath2();
        while (Accept("~")) left = new BinaryExpr("~", left, ParseMath2(), left.Line);
        return left;
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (Peek() is { Kind: TokenKind.Operator, Text: "*" or "/" or "//" or "%" } t) { Next(); left = new BinaryExpr(t.Text, left, ParsePow(), left.Line); }
        return left;
    }

    private Expr ParsePow()
    {
        var left = ParseUnary();
        while (Accept("**")) left = new BinaryExpr("**", left, ParseUnary(), left.Line);
        return left;
    }

    private Expr ParseUnary(bool withFilter = true)
    {
        var t = Peek();
        Expr node;
        if (t is { Kind: TokenKind.Operator, Text: "-" or "+" }) { Next(); node = new UnaryExpr(t.Text, ParseUnary(false), t.Line); }
        else node = ParsePostfix(ParsePrimary());
        return withFilter ? ParseFilters(node) : node;
    }

    private Expr ParsePrimary()
    {
        var t = Next();
        switch (t.Kind)
        {
            case TokenKind.Name:
                return t.Text switch
                {
                    "true" or "True" => new Literal(true, t.Line),
                    "false" or "False" => new Literal(false, t.Line),
                    "none" or "None" => new Literal(null, t.Line),
                    _ => new NameRef(t.Text, t.Line),
                };
            case TokenKind.String:
            {
                string s = t.Text;
                while (Peek().Kind == TokenKind.String) s += Next().Text; // adjacent literals concatenate
                return new Literal(s, t.Line);
            }
            case TokenKind.Integer: return new Literal(long.Parse(t.Text, CultureInfo.InvariantCulture), t.Line);
            case TokenKind.Float: return new Literal(double.Parse(t.Text, CultureInfo.InvariantCulture), t.Line);
            case TokenKind.Operator when t.Text == "(":
            {
                if (Accept(")")) return new ListExpr([], t.Line, IsTuple: true);
                var inner = ParseExpression();
                if (Peek() is { Kind: TokenKind.Operator, Text: "," })
                {
                    var items = new List<Expr> { inner };
                    while (Accept(",")) { if (Peek() is { Text: ")" }) break; items.Add(ParseExpression()); }
                    inner = new ListExpr(items, t.Line, IsTuple: true);
                }
                Expect(")");
                return inner;
            }
            case TokenKind.Operator when t.Text == "[":
            {
                var items = new List<Expr>();
                while (!Accept("]"))
                {
                    if (items.Count > 0) { Expect(","); if (Accept("]")) break; }
                    items.Add(ParseExpression());
                }
                return new ListExpr(items, t.Line);
            }
            case TokenKind.Operator when t.Text == "{":
            {
                var items = new List<(Expr, Expr)>();
                while (!Accept("}"))
                {
                    if (items.Count > 0) { Expect(","); if (Accept("}")) break; }
                    var key = ParseExpression();
                    Expect(":");
                    items.Add((key, ParseExpression()));
                }
                return new DictExpr(items, t.Line);
            }
            default:
                throw Error($"unexpected {t}", t);
        }
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            var t = Peek();
            if (t is { Kind: TokenKind.Operator, Text: "." })
            {
                Next();
                var name = Next();
                if (name.Kind == TokenKind.Name) node = new GetAttr(node, name.Text, t.Line);
                else if (name.Kind == TokenKind.Integer) node = new GetItem(node, new Literal(long.Parse(name.Text, CultureInfo.InvariantCulture), t.Line), t.Line);
                else throw Error($"expected an attribute name after '.', got {name}", name);
            }
            else if (t is { Kind: TokenKind.Operator, Text: "[" })
            {
                Next();
                node = ParseSubscript(node, t.Line);
            }
            else if (t is { Kind: TokenKind.Operator, Text: "(" })
            {
                Next();
                var args = new List<Expr>();
                var kwargs = new List<(string, Expr)>();
                ParseCallArgs(args, kwargs);
                node = new CallExpr(node, args, kwargs, t.Line);
            }
            else return node;
        }
    }

    private Expr ParseSubscript(Expr target, int line)
    {
        Expr? start = null, stop = null, step = null;
        bool slice = false;
        if (!(Peek() is { Text: ":" })) start = ParseExpression();
        if (Accept(":"))
        {
            slice = true;
            if (!(Peek() is { Text: ":" or "]" })) stop = ParseExpression();
            if (Accept(":") && !(Peek() is { Text: "]" })) step = ParseExpression();
        }
        Expect("]");
        return slice ? new SliceExpr(target, start, stop, step, line) : new GetItem(target, start!, line);
    }

    // After "(": positional and name=value arguments up to ")".
    private void ParseCallArgs(List<Expr> args, List<(string, Expr)> kwargs)
    {
        while (!Accept(")"))
        {
            if (args.Count + kwargs.Count > 0) { Expect(","); if (Accept(")")) break; }
            if (Peek() is { Text: "*" or "**" } star) throw new JinjaUnsupportedException($"'{star.Text}' argument unpacking", star.Line);
            if (Peek().Kind == TokenKind.Name && PeekAt(1) is { Kind: TokenKind.Operator, Text: "=" })
            {
                string name = Next().Text;
                Next();
                kwargs.Add((name, ParseExpression()));
            }
            else
            {
                if (kwargs.Count > 0) throw Error("a positional argument follows a keyword argument", Peek());
                args.Add(ParseExpression());
            }
        }
    }

    private Expr ParseFilters(Expr node)
    {
        while (true)
        {
            var t = Peek();
            if (t is { Kind: TokenKind.Operator, Text: "|" })
            {
                Next();
                string name = ExpectDottedName();
                var args = new List<Expr>();
                var kwargs = new List<(string, Expr)>();
                if (Accept("(")) ParseCallArgs(args, kwargs);
                JinjaBuiltins.CheckFilter(name, t.Line);
                node = new FilterExpr(node, name, args, kwargs, t.Line);
            }
            else if (t is { Kind: TokenKind.Name, Text: "is" })
            {
                Next();
                bool negated = AcceptName("not");
                string name = ExpectDottedName();
                // "none"/"true"/"false" are test names, not literals, here.
                var args = new List<Expr>();
                if (Accept("(")) ParseCallArgs(args, []);
                else if (Peek() is { Kind: TokenKind.String or TokenKind.Integer or TokenKind.Float } ||
                         (Peek() is { Kind: TokenKind.Name } n && n.Text is not ("and" or "or" or "else" or "if" or "is" or "in" or "not")) ||
                         Peek() is { Kind: TokenKind.Operator, Text: "[" or "{" })
                    args.Add(ParsePostfix(ParsePrimary()));
                JinjaBuiltins.CheckTest(name, t.Line);
                node = new TestExpr(node, name, args, negated, t.Line);
            }
            else if (t is { Kind: TokenKind.Operator, Text: "(" })
            {
                Next();
                var args = new List<Expr>();
                var kwargs = new List<(string, Expr)>();
                ParseCallArgs(args, kwargs);
                node = new CallExpr(node, args, kwargs, t.Line);
            }
            else return node;
        }
    }

    // ---- token helpers ----

    private void Begin(Segment seg) { tokens = seg.Tokens; tokenIndex = 0; }
    private Token Peek() => tokens[Math.Min(tokenIndex, tokens.Count - 1)];
    private Token PeekAt(int ahead) => tokens[Math.Min(tokenIndex + ahead, tokens.Count - 1)];

    private Token Next()
    {
        var t = Peek();
        if (t.Kind != TokenKind.End) tokenIndex++;
        return t;
    }

    private bool Accept(string op)
    {
        if (Peek() is { Kind: TokenKind.Operator } t && t.Text == op) { tokenIndex++; return true; }
        return false;
    }

    private bool AcceptName(string name)
    {
        if (Peek() is { Kind: TokenKind.Name } t && t.Text == name) { tokenIndex++; return true; }
        return false;
    }

    private void Expect(string op)
    {
        if (!Accept(op)) throw Error($"expected '{op}', got {Peek()}", Peek());
    }

    private string ExpectName()
    {
        var t = Next();
        if (t.Kind != TokenKind.Name) throw Error($"expected a name, got {t}", t);
        return t.Text;
    }

    private string ExpectDottedName()
    {
        string name = ExpectName();
        while (Peek() is { Kind: TokenKind.Operator, Text: "." } && PeekAt(1).Kind == TokenKind.Name) { Next(); name += "." + Next().Text; }
        return name;
    }

    private void ExpectEnd()
    {
        var t = Peek();
        if (t.Kind != TokenKind.End) throw Error($"expected the end of the tag, got {t}", t);
    }

    private static JinjaException Error(string message, Token at) => new($"{message} on line {at.Line}", at.Line);
}
