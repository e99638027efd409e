using System.Text;

namespace ProxyOrleans.Inference.Tokenization.Jinja;

internal sealed class Scope(Scope? parent)
{
    private readonly Dictionary<string, object?> vars = new(StringComparer.Ordinal);
    public Scope? Parent { get; } = parent;

    public bool TryGet(string name, out object? value)
    {
        for (var s = this; s is not null; s = s.Parent)
            if (s.vars.TryGetValue(name, out value)) return true;
        value = null;
        return false;
    }

    public void Set(string name, object? value) => vars[name] = value;
}

/// <summary>The loop variable of a for loop.</summary>
internal sealed class LoopInfo(List<object?> items, int depth0)
{
    public int Index0 { get; set; }
    public int Depth0 { get; } = depth0;

    public object? Get(string name, int line) => name switch
    {
        "index0" => (long)Index0,
        "index" => (long)(Index0 + 1),
        "revindex0" => (long)(items.Count - Index0 - 1),
        "revindex" => (long)(items.Count - Index0),
        "first" => Index0 == 0,
        "last" => Index0 == items.Count - 1,
        "length" => (long)items.Count,
        "depth0" => (long)Depth0,
        "depth" => (long)(Depth0 + 1),
        "previtem" => Index0 > 0 ? items[Index0 - 1] : new JinjaUndefined("there is no previous item"),
        "nextitem" => Index0 + 1 < items.Count ? items[Index0 + 1] : new JinjaUndefined("there is no next item"),
        "cycle" => (JinjaCallable)((args, _) =>
            args.Count == 0 ? throw new JinjaException($"loop.cycle() needs at least one value (line {line})", line) : args[Index0 % args.Count]),
        _ => new JinjaUndefined($"loop.{name}"),
    };
}

/// <summary>Walks the parsed template. One instance per render.</summary>
internal sealed class JinjaRenderer(JinjaOptions options)
{
    private sealed class LoopControl(bool isBreak) : Exception { public bool IsBreak { get; } = isBreak; }

    private int loopDepth;

    public Scope GlobalScope()
    {
        var scope = new Scope(null);
        foreach (var (name, fn) in JinjaBuiltins.Globals(options)) scope.Set(name, fn);
        return scope;
    }

    public void Run(List<Node> nodes, Scope scope, StringBuilder output)
    {
        foreach (var node in nodes) Execute(node, scope, output);
    }

    private void Execute(Node node, Scope scope, StringBuilder output)
    {
        switch (node)
        {
            case TextNode t: output.Append(t.Text); break;
            case OutputNode o: output.Append(JinjaValues.Str(Eval(o.Value, scope))); break;
            case IfNode i:
                foreach (var (condition, body) in i.Branches)
                    if (JinjaValues.Truthy(Eval(condition, scope))) { Run(body, scope, output); return; }
                if (i.Else is not null) Run(i.Else, scope, output);
                break;
            case ForNode f: ExecuteFor(f, scope, output); break;
            case SetNode s: ExecuteSet(s, scope); break;
            case MacroNode m: scope.Set(m.Name, MakeMacro(m, scope)); break;
            case LoopControlNode c:
                if (loopDepth == 0) throw new JinjaException($"'{{% {(c.IsBreak ? "break" : "continue")} %}}' outside a loop (line {c.Line})", c.Line);
                throw new LoopControl(c.IsBreak);
            case ScopedBlockNode sb: Run(sb.Body, new Scope(scope), output); break;
            case FilterBlockNode fb:
            {
                var inner = new StringBuilder();
                Run(fb.Body, scope, inner);
                var args = new List<object?> { inner.ToString() };
                args.AddRange(fb.Args.Select(a => Eval(a, scope)));
                output.Append(JinjaValues.Str(JinjaBuiltins.ApplyFilter(fb.Name, args, [], fb.Line)));
                break;
            }
            default: throw new JinjaUnsupportedException(node.GetType().Name, node.Line);
        }
    }

    private void ExecuteFor(ForNode f, Scope scope, StringBuilder output)
    {
        var all = JinjaValues.Iterate(Eval(f.Iterable, scope), f.Line);
        var items = all;
        if (f.Filter is not null)
        {
            items = [];
            foreach (var item in all)
            {
                var filterScope = new Scope(scope);
                Bind(f.Targets, item, filterScope, f.Line);
                if (JinjaValues.Truthy(Eval(f.Filter, filterScope))) items.Add(item);
            }
        }
        if (items.Count == 0)
        {
            if (f.Else is not null) Run(f.Else, scope, output);
            return;
        }
        var loop = new LoopInfo(items, loopDepth);
        loopDepth++;
        try
        {
            for (int i = 0; i < items.Count; i++)
            {
                loop.Index0 = i;
                // Each iteration is a scope of its own: a {% set %} in the body is gone at the next item, as in jinja2.
                var loopScope = new Scope(scope);
                Bind(f.Targets, items[i], loopScope, f.Line);
                loopScope.Set("loop", loop);
                try { Run(f.Body, loopScope, output); }
                catch (LoopControl c) when (c.IsBreak) { break; }
                catch (LoopControl) { }
            }
        }
        finally { loopDepth--; }
    }

    private static void Bind(List<string> targets, object? item, Scope scope, int line)
    {
        if (targets.Count == 1) { scope.Set(targets[0], item); return; }
        var parts = JinjaValues.Iterate(item, line);
        if (parts.Count != targets.Count)
            throw new JinjaException($"cannot unpack {parts.Count} values into {targets.Count} names (line {line})", line);
        for (int i = 0; i < targets.Count; i++) scope.Set(targets[i], parts[i]);
    }

    private void ExecuteSet(SetNode s, Scope scope)
    {
        object? value;
        if (s.Body is not null)
        {
            var sb = new StringBuilder();
            Run(s.Body, scope, sb);
            value = sb.ToString();
        }
        else value = Eval(s.Value!, scope);
        if (s.Attribute is not null)
        {
            if (!scope.TryGet(s.Targets[0], out var target) || target is not JinjaNamespace ns)
                throw new JinjaException($"'{{% set {s.Targets[0]}.{s.Attribute} %}}' needs '{s.Targets[0]}' to be a namespace() (line {s.Line})", s.Line);
            ns.Attributes[s.Attribute] = value;
            return;
        }
        Bind(s.Targets, value, scope, s.Line);
    }

    private JinjaCallable MakeMacro(MacroNode m, Scope definitionScope) => (args, kwargs) =>
    {
        if (args.Count > m.Parameters.Count)
            throw new JinjaException($"macro '{m.Name}' takes {m.Parameters.Count} arguments, got {args.Count} (line {m.Line})", m.Line);
        var scope = new Scope(definitionScope);
        for (int i = 0; i < m.Parameters.Count; i++)
        {
            var (name, fallback) = m.Parameters[i];
            object? value = i < args.Count ? args[i]
                : kwargs.Remove(name, out var kw) ? kw
                : fallback is not null ? Eval(fallback, scope)
                : new JinjaUndefined($"macro parameter '{name}'");
            scope.Set(name, value);
        }
        if (kwargs.Count > 0)
            throw new JinjaException($"macro '{m.Name}' has no parameter '{kwargs.Keys.First()}' (line {m.Line})", m.Line);
        var sb = new StringBuilder();
        int saved = loopDepth;
        loopDepth = 0;
        try { Run(m.Body, scope, sb); }
        finally { loopDepth = saved; }
        return sb.ToString();
    };

    public object? Eval(Expr e, Scope scope)
    {
        switch (e)
        {
            case Literal l: return l.Value;
            case NameRef n: return scope.TryGet(n.Name, out var v) ? v : new JinjaUndefined($"'{n.Name}'");
            case ListExpr { IsTuple: true } t:
            {
                var tuple = new JinjaTuple();
                tuple.AddRange(t.Items.Select(i => Eval(i, scope)));
                return tuple;
            }
            case ListExpr l: return l.Items.Select(i => Eval(i, scope)).ToList();
            case DictExpr d:
            {
                var dict = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (k, val) in d.Items)
                {
                    var key = Eval(k, scope) as string
                        ?? throw new JinjaException($"dictionary keys must be strings here (line {d.Line})", d.Line);
                    dict[key] = Eval(val, scope);
                }
                return dict;
            }
            case GetAttr a: return JinjaBuiltins.GetAttribute(Eval(a.Target, scope), a.Name, a.Line);
            case GetItem g: return JinjaBuiltins.GetItem(Eval(g.Target, scope), Eval(g.Index, scope), g.Line);
            case SliceExpr s:
                return JinjaBuiltins.Slice(Eval(s.Target, scope),
                    s.Start is null ? null : Eval(s.Start, scope), s.Stop is null ? null : Eval(s.Stop, scope),
                    s.Step is null ? null : Eval(s.Step, scope), s.Line);
            case CallExpr c:
            {
                var target = Eval(c.Target, scope);
                if (target is not JinjaCallable fn)
                    throw new JinjaException(target is JinjaUndefined u
                        ? $"{u.Description} is undefined and cannot be called (line {c.Line})"
                        : $"'{JinjaValues.TypeName(target)}' object is not callable (line {c.Line})", c.Line);
                var args = c.Args.Select(a => Eval(a, scope)).ToList();
                var kwargs = c.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, scope), StringComparer.Ordinal);
                return fn(args, kwargs);
            }
            case FilterExpr f:
            {
                var args = new List<object?> { Eval(f.Target, scope) };
                args.AddRange(f.Args.Select(a => Eval(a, scope)));
                var kwargs = f.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value, scope), StringComparer.Ordinal);
                return JinjaBuiltins.ApplyFilter(f.Name, args, kwargs, f.Line);
            }
            case TestExpr t:
            {
                bool result = JinjaBuiltins.ApplyTest(t.Name, Eval(t.Target, scope), t.Args.Select(a => Eval(a, scope)).ToList(), t.Line);
                return t.Negated ? !result : result;
            }
            case UnaryExpr u:
            {
                var operand = Eval(u.Operand, scope);
                return u.Op switch
                {
                    "not" => !JinjaValues.Truthy(operand),
                    "-" => operand switch
                    {
                        long x => (object)(-x),
                        double x => -x,
                        bool x => -(x ? 1L : 0L),
                        _ => throw new JinjaException($"bad operand type for unary -: '{JinjaValues.TypeName(operand)}' (line {u.Line})", u.Line),
                    },
                    _ => JinjaValues.IsNumber(operand) ? operand
                        : throw new JinjaException($"bad operand type for unary +: '{JinjaValues.TypeName(operand)}' (line {u.Line})", u.Line),
                };
            }
            case BinaryExpr b:
            {
                if (b.Op == "and") { var l = Eval(b.Left, scope); return JinjaValues.Truthy(l) ? Eval(b.Right, scope) : l; }
                if (b.Op == "or") { var l = Eval(b.Left, scope); return JinjaValues.Truthy(l) ? l : Eval(b.Right, scope); }
                return JinjaBuiltins.Arithmetic(b.Op, Eval(b.Left, scope), Eval(b.Right, scope), b.Line);
            }
            case CompareExpr c:
            {
                var left = Eval(c.First, scope);
                foreach (var (op, rightExpr) in c.Rest)
                {
                    var right = Eval(rightExpr, scope);
                    bool ok = op switch
                    {
                        "==" => JinjaValues.Equal(left, right),
                        "!=" => !JinjaValues.Equal(left, right),
                        "<" => JinjaValues.Compare(left, right, op, c.Line) < 0,
                        ">" => JinjaValues.Compare(left, right, op, c.Line) > 0,
                        "<=" => JinjaValues.Compare(left, right, op, c.Line) <= 0,
                        ">=" => JinjaValues.Compare(left, right, op, c.Line) >= 0,
                        "in" => JinjaBuiltins.Contains(right, left, c.Line),
                        _ => !JinjaBuiltins.Contains(right, left, c.Line),
                    };
                    if (!ok) return false;
                    left = right;
                }
                return true;
            }
            case CondExpr c:
                return JinjaValues.Truthy(Eval(c.Condition, scope)) ? Eval(c.Then, scope)
                    : c.Else is null ? new JinjaUndefined("the missing else branch") : Eval(c.Else, scope);
            default:
                throw new JinjaUnsupportedException(e.GetType().Name, e.Line);
        }
    }
}
