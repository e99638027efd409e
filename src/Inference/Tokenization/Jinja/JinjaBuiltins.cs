using System.Globalization;
using System.Text;

namespace ProxyOrleans.Inference.Tokenization.Jinja;

/// <summary>
/// Filters, tests, globals and Python methods, each with jinja2's (and Python's) behaviour. A filter or test
/// outside these tables is refused when the template is parsed. (Over 400 lines on purpose: one table of small
/// independent entries, easier to check against jinja2's list in one place than spread over files.)
/// </summary>
internal static class JinjaBuiltins
{
    private delegate object? Filter(List<object?> args, Dictionary<string, object?> kwargs, int line);

    // ---- globals ----

    public static IEnumerable<(string, JinjaCallable)> Globals(JinjaOptions options)
    {
        yield return ("raise_exception", (args, _) => throw new JinjaRaisedException(args.Count > 0 ? JinjaValues.Str(args[0]) : "raise_exception()"));
        yield return ("strftime_now", (args, _) =>
            Strftime((options.Now ?? (() => DateTime.Now))(), args.Count > 0 ? JinjaValues.Str(args[0]) : ""));
        yield return ("namespace", (args, kwargs) =>
        {
            var ns = new JinjaNamespace();
            foreach (var a in args)
                if (a is Dictionary<string, object?> d) foreach (var (k, v) in d) ns.Attributes[k] = v;
            foreach (var (k, v) in kwargs) ns.Attributes[k] = v;
            return ns;
        });
        yield return ("dict", (args, kwargs) =>
        {
            var d = args.Count > 0 && args[0] is Dictionary<string, object?> src
                ? new Dictionary<string, object?>(src, StringComparer.Ordinal) : new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var (k, v) in kwargs) d[k] = v;
            return d;
        });
        yield return ("range", (args, _) =>
        {
            long start = 0, stop, step = 1;
            if (args.Count == 1) stop = JinjaValues.ToLong(args[0]);
            else { start = JinjaValues.ToLong(args[0]); stop = JinjaValues.ToLong(args[1]); if (args.Count > 2) step = JinjaValues.ToLong(args[2]); }
            if (step == 0) throw new JinjaException("range() arg 3 must not be zero", 0);
            var list = new List<object?>();
            for (long i = start; step > 0 ? i < stop : i > stop; i += step) list.Add(i);
            return list;
        });
    }

    // Python's time.strftime for the directives chat templates use ("%d %b %Y", "%Y-%m-%d").
    private static string Strftime(DateTime t, string format)
    {
        var sb = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 == format.Length) { sb.Append(format[i]); continue; }
            char d = format[++i];
            bool noPad = false;
            if (d == '-' && i + 1 < format.Length) { noPad = true; d = format[++i]; }
            string Pad(int v, int width) => noPad ? v.ToString(c) : v.ToString(c).PadLeft(width, '0');
            sb.Append(d switch
            {
                'Y' => t.Year.ToString(c),
                'y' => Pad(t.Year % 100, 2),
                'm' => Pad(t.Month, 2),
                'd' => Pad(t.Day, 2),
                'e' => t.Day.ToString(c).PadLeft(2, ' '),
                'H' => Pad(t.Hour, 2),
                'I' => Pad(t.Hour % 12 == 0 ? 12 : t.Hour % 12, 2),
                'M' => Pad(t.Minute, 2),
                'S' => Pad(t.Second, 2),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'b' => t.ToString("MMM", c),
                'B' => t.ToString("MMMM", c),
                'a' => t.ToString("ddd", c),
                'A' => t.ToString("dddd", c),
                'j' => Pad(t.DayOfYear, 3),
                '%' => "%",
                _ => throw new JinjaUnsupportedException($"strftime_now directive '%{d}'", 0),
            });
        }
        return sb.ToString();
    }

    // ---- attribute and item access (jinja2's Environment.getattr / getitem) ----

    private static readonly HashSet<string> DictMethods = ["items", "keys", "values", "get"];

    public static object? GetAttribute(object? target, string name, int line)
    {
        switch (target)
        {
            case JinjaUndefined u: throw new JinjaException($"{u.Description} is undefined, so it has no attribute '{name}' (line {line})", line);
            case LoopInfo loop: return loop.Get(name, line);
            case JinjaNamespace ns: return ns.Attributes.TryGetValue(name, out var v) ? v : new JinjaUndefined($"namespace attribute '{name}'");
            case Dictionary<string, object?> d:
                if (DictMethods.Contains(name)) return DictMethod(d, name);
                return d.TryGetValue(name, out var item) ? item : new JinjaUndefined($"'{name}' (no such key)");
            case string s: return StringMethod(s, name, line) ?? (object)new JinjaUndefined($"str attribute '{name}'");
            default: return new JinjaUndefined($"'{JinjaValues.TypeName(target)}' attribute '{name}'");
        }
    }

    public static object? GetItem(object? target, object? key, int line)
    {
        switch (target)
        {
            case JinjaUndefined u: throw new JinjaException($"{u.Description} is undefined, so it has no item {JinjaValues.Repr(key)} (line {line})", line);
            case Dictionary<string, object?> d when key is string k:
                if (d.TryGetValue(k, out var v)) return v;
                return DictMethods.Contains(k) ? DictMethod(d, k) : new JinjaUndefined($"'{k}' (no such key)");
            case List<object?> l when key is long or bool:
            {
                long i = JinjaValues.ToLong(key);
                if (i < 0) i += l.Count;
                return i >= 0 && i < l.Count ? l[(int)i] : new JinjaUndefined($"list index {JinjaValues.Repr(key)} (out of range)");
            }
            case string s when key is long or bool:
            {
                var chars = JinjaValues.TextElements(s);
                long i = JinjaValues.ToLong(key);
                if (i < 0) i += chars.Count;
                return i >= 0 && i < chars.Count ? chars[(int)i] : new JinjaUndefined($"string index {JinjaValues.Repr(key)} (out of range)");
            }
            case LoopInfo or JinjaNamespace or string when key is string name: return GetAttribute(target, name, line);
            default: return new JinjaUndefined($"item {JinjaValues.Repr(key)} of '{JinjaValues.TypeName(target)}'");
        }
    }

    public static object? Slice(object? target, object? start, object? stop, object? step, int line)
    {
        bool isString = target is string;
        List<object?> items = target switch
        {
            List<object?> l => l,
            string s => JinjaValues.TextElements(s),
            JinjaUndefined u => throw new JinjaException($"{u.Description} is undefined and cannot be sliced (line {line})", line),
            _ => throw new JinjaException($"'{JinjaValues.TypeName(target)}' object cannot be sliced (line {line})", line),
        };
        long n = items.Count;
        long st = step is null ? 1 : JinjaValues.ToLong(step);
        if (st == 0) throw new JinjaException($"slice step cannot be zero (line {line})", line);
        // Python's slice.indices().
        long Clamp(object? v, long fallback, bool isStart)
        {
            if (v is null) return fallback;
            long x = JinjaValues.ToLong(v);
            if (x < 0) x += n;
            if (st > 0) return Math.Clamp(x, 0, n);
            return Math.Clamp(x, -1, n - 1);
        }
        long a = Clamp(start, st > 0 ? 0 : n - 1, true), b = Clamp(stop, st > 0 ? n : -1, false);
        var result = new List<object?>();
        for (long i = a; st > 0 ? i < b : i > b; i += st) result.Add(items[(int)i]);
        return isString ? string.Concat(result.Cast<string>()) : result;
    }

    private static JinjaCallable DictMethod(Dictionary<string, object?> d, string name) => name switch
    {
        "items" => (_, _) => d.Select(kv => (object?)new JinjaTuple { kv.Key, kv.Value }).ToList(),
        "keys" => (_, _) => d.Keys.Cast<object?>().ToList(),
        "values" => (_, _) => d.Values.ToList(),
        _ => (args, _) => args.Count > 0 && args[0] is string k && d.TryGetValue(k, out var v) ? v : args.Count > 1 ? args[1] : null,
    };

    private static JinjaCallable? StringMethod(string s, string name, int line)
    {
        string Arg(List<object?> args, int i) => args.Count > i && args[i] is string a ? a
            : throw new JinjaException($"str.{name}() needs a string argument (line {line})", line);
        string? Chars(List<object?> args) => args.Count > 0 && args[0] is not null ? Arg(args, 0) : null;
        return name switch
        {
            "strip" => (args, _) => PyStrip(s, Chars(args), true, true),
            "lstrip" => (args, _) => PyStrip(s, Chars(args), true, false),
            "rstrip" => (args, _) => PyStrip(s, Chars(args), false, true),
            "upper" => (_, _) => s.ToUpperInvariant(),
            "lower" => (_, _) => s.ToLowerInvariant(),
            "title" => (_, _) => PyTitle(s),
            "capitalize" => (_, _) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant(),
            "startswith" => (args, _) => Affix(args, p => s.StartsWith(p, StringComparison.Ordinal)),
            "endswith" => (args, _) => Affix(args, p => s.EndsWith(p, StringComparison.Ordinal)),
            "split" => (args, kwargs) => PySplit(s, args.Count > 0 ? args[0] as string : kwargs.GetValueOrDefault("sep") as string,
                args.Count > 1 ? JinjaValues.ToLong(args[1]) : kwargs.TryGetValue("maxsplit", out var m) ? JinjaValues.ToLong(m) : -1, line),
            "replace" => (args, _) => PyReplace(s, Arg(args, 0), Arg(args, 1), args.Count > 2 ? JinjaValues.ToLong(args[2]) : -1),
            "find" => (args, _) => (long)s.IndexOf(Arg(args, 0), StringComparison.Ordinal),
            "rfind" => (args, _) => (long)s.LastIndexOf(Arg(args, 0), StringComparison.Ordinal),
            "count" => (args, _) => (long)CountOccurrences(s, Arg(args, 0)),
            "join" => (args, _) => string.Join(s, JinjaValues.Iterate(args.Count > 0 ? args[0] : null, line).Select(x =>
                x as string ?? throw new JinjaException($"str.join() expects strings, found '{JinjaValues.TypeName(x)}' (line {line})", line))),
            "isdigit" => (_, _) => s.Length > 0 && s.All(char.IsDigit),
            "isspace" => (_, _) => s.Length > 0 && s.All(PythonString.IsSpace),
            "splitlines" => (_, _) => s.Split('\n').Select(x => (object?)x.TrimEnd('\r')).Take(s.EndsWith('\n') ? s.Split('\n').Length - 1 : int.MaxValue).ToList(),
            _ => null,
        };

        object? Affix(List<object?> args, Func<string, bool> test) => args.Count > 0 && args[0] is List<object?> options
            ? options.Any(o => o is string p && test(p))
            : test(Arg(args, 0));
    }

    private static int CountOccurrences(string s, string sub)
    {
        if (sub.Length == 0) return s.Length + 1;
        int n = 0;
        for (int i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    public static string PyStrip(string s, string? chars, bool left, bool right)
    {
        Func<char, bool> strip = chars is null ? PythonString.IsSpace : chars.Contains;
        int start = 0, end = s.Length;
        if (left) while (start < end && strip(s[start])) start++;
        if (right) while (end > start && strip(s[end - 1])) end--;
        return s[start..end];
    }

    private static string PyTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool previousCased = false;
        foreach (char c in s)
        {
            sb.Append(previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousCased = char.IsLetter(c);
        }
        return sb.ToString();
    }

    private static List<object?> PySplit(string s, string? sep, long maxSplit, int line)
    {
        var parts = new List<object?>();
        if (sep is null)
        {
            int i = 0;
            while (true)
            {
                while (i < s.Length && PythonString.IsSpace(s[i])) i++;
                if (i == s.Length) break;
                if (maxSplit >= 0 && parts.Count == maxSplit) { parts.Add(PyStrip(s[i..], null, false, true)); break; }
                int start = i;
                while (i < s.Length && !PythonString.IsSpace(s[i])) i++;
                parts.Add(s[start..i]);
            }
            return parts;
        }
        if (sep.Length == 0) throw new JinjaException($"str.split(): empty separator (line {line})", line);
        int from = 0;
        while (maxSplit < 0 || parts.Count < maxSplit)
        {
            int at = s.IndexOf(sep, from, StringComparison.Ordinal);
            if (at < 0) break;
            parts.Add(s[from..at]);
            from = at + sep.Length;
        }
        parts.Add(s[from..]);
        return parts;
    }

    private static string PyReplace(string s, string old, string replacement, long count)
    {
        if (count < 0) return old.Length == 0 ? string.Join(replacement, ["", .. JinjaValues.TextElements(s).Cast<string>(), ""]) : s.Replace(old, replacement, StringComparison.Ordinal);
        var sb = new StringBuilder();
        int from = 0;
        for (long n = 0; n < count; n++)
        {
            int at = s.IndexOf(old, from, StringComparison.Ordinal);
            if (at < 0 || old.Length == 0) break;
            sb.Append(s, from, at - from).Append(replacement);
            from = at + old.Length;
        }
        return sb.Append(s, from, s.Length - from).ToString();
    }

    // ---- operators ----

    public static object? Arithmetic(string op, object? a, object? b, int line)
    {
        if (op == "~") return JinjaValues.Str(a) + JinjaValues.Str(b);
        if (a is JinjaUndefined ua) throw new JinjaException($"{ua.Description} is undefined and cannot be used with '{op}' (line {line})", line);
        if (b is JinjaUndefined ub) throw new JinjaException($"{ub.Description} is undefined and cannot be used with '{op}' (line {line})", line);
        bool numbers = JinjaValues.IsNumber(a) && JinjaValues.IsNumber(b);
        bool floats = a is double || b is double;
        switch (op)
        {
            case "+":
                if (numbers) return floats ? JinjaValues.ToDouble(a) + JinjaValues.ToDouble(b) : (object)(JinjaValues.ToLong(a) + JinjaValues.ToLong(b));
                if (a is string sa && b is string sb) return sa + sb;
                if (a is List<object?> la && b is List<object?> lb) return la.Concat(lb).ToList();
                break;
            case "-":
                if (numbers) return floats ? JinjaValues.ToDouble(a) - JinjaValues.ToDouble(b) : (object)(JinjaValues.ToLong(a) - JinjaValues.ToLong(b));
                break;
            case "*":
                if (numbers) return floats ? JinjaValues.ToDouble(a) * JinjaValues.ToDouble(b) : (object)(JinjaValues.ToLong(a) * JinjaValues.ToLong(b));
                if (a is string s1 && b is long or bool) return string.Concat(Enumerable.Repeat(s1, (int)Math.Max(0, JinjaValues.ToLong(b))));
                if (b is string s2 && a is long or bool) return string.Concat(Enumerable.Repeat(s2, (int)Math.Max(0, JinjaValues.ToLong(a))));
                if (a is List<object?> l1 && b is long or bool) return Enumerable.Repeat(l1, (int)Math.Max(0, JinjaValues.ToLong(b))).SelectMany(x => x).ToList();
                break;
            case "/":
                if (numbers)
                {
                    double d = JinjaValues.ToDouble(b);
                    if (d == 0) throw new JinjaException($"division by zero (line {line})", line);
                    return JinjaValues.ToDouble(a) / d;
                }
                break;
            case "//":
            case "%":
                if (numbers)
                {
                    if (JinjaValues.ToDouble(b) == 0) throw new JinjaException($"integer division or modulo by zero (line {line})", line);
                    if (floats)
                    {
                        double x = JinjaValues.ToDouble(a), y = JinjaValues.ToDouble(b);
                        double q = Math.Floor(x / y);
                        return op == "//" ? q : x - q * y;
                    }
                    long xi = JinjaValues.ToLong(a), yi = JinjaValues.ToLong(b);
                    long fq = xi / yi - ((xi % yi != 0) && ((xi < 0) ^ (yi < 0)) ? 1 : 0);
                    return op == "//" ? fq : xi - fq * yi;
                }
                if (op == "%" && a is string) throw new JinjaUnsupportedException("printf-style '%' string formatting", line);
                break;
            case "**":
                if (numbers)
                {
                    if (!floats && JinjaValues.ToLong(b) >= 0) return (long)Math.Pow(JinjaValues.ToLong(a), JinjaValues.ToLong(b));
                    return Math.Pow(JinjaValues.ToDouble(a), JinjaValues.ToDouble(b));
                }
                break;
        }
        throw new JinjaException($"unsupported operand type(s) for {op}: '{JinjaValues.TypeName(a)}' and '{JinjaValues.TypeName(b)}' (line {line})", line);
    }

    public static bool Contains(object? container, object? item, int line) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal)
            : throw new JinjaException($"'in <string>' requires string as left operand, not {JinjaValues.TypeName(item)} (line {line})", line),
        List<object?> l => l.Any(x => JinjaValues.Equal(x, item)),
        Dictionary<string, object?> d => item is string k && d.ContainsKey(k),
        JinjaUndefined => false,
        _ => throw new JinjaException($"argument of type '{JinjaValues.TypeName(container)}' is not iterable (line {line})", line),
    };

    // ---- filters ----

    private static object? Arg(List<object?> args, Dictionary<string, object?> kwargs, int index, string name, object? fallback = null) =>
        kwargs.TryGetValue(name, out var v) ? v : args.Count > index ? args[index] : fallback;

    private static readonly Dictionary<string, Filter> Filters = new(StringComparer.Ordinal)
    {
        ["trim"] = (a, k, _) => PyStrip(JinjaValues.Str(a[0]), Arg(a, k, 1, "chars") as string, true, true),
        ["length"] = (a, _, line) => JinjaValues.Length(a[0], line),
        ["count"] = (a, _, line) => JinjaValues.Length(a[0], line),
        ["string"] = (a, _, _) => JinjaValues.Str(a[0]),
        ["upper"] = (a, _, _) => JinjaValues.Str(a[0]).ToUpperInvariant(),
        ["lower"] = (a, _, _) => JinjaValues.Str(a[0]).ToLowerInvariant(),
        ["capitalize"] = (a, _, _) => JinjaValues.Str(a[0]) is var s && s.Length > 0 ? char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant() : "",
        ["title"] = (a, _, _) => PyTitle(JinjaValues.Str(a[0])),
        ["default"] = DefaultFilter,
        ["d"] = DefaultFilter,
        ["first"] = (a, _, line) => JinjaValues.Iterate(a[0], line) is { Count: > 0 } l ? l[0] : new JinjaUndefined("the first item of an empty sequence"),
        ["last"] = (a, _, line) => JinjaValues.Iterate(a[0], line) is { Count: > 0 } l ? l[^1] : new JinjaUndefined("the last item of an empty sequence"),
        ["items"] = (a, _, line) => a[0] switch
        {
            JinjaUndefined => new List<object?>(),
            Dictionary<string, object?> d => d.Select(kv => (object?)new JinjaTuple { kv.Key, kv.Value }).ToList(),
            _ => throw new JinjaException($"the items filter needs a mapping, got '{JinjaValues.TypeName(a[0])}' (line {line})", line),
        },
        ["list"] = (a, _, line) => JinjaValues.Iterate(a[0], line).ToList(),
        ["reverse"] = (a, _, line) => a[0] is string s
            ? string.Concat(JinjaValues.TextElements(s).Cast<string>().Reverse())
            : Enumerable.Reverse(JinjaValues.Iterate(a[0], line)).ToList(),
        ["join"] = (a, k, line) =>
        {
            string sep = JinjaValues.Str(Arg(a, k, 1, "d", ""));
            var items = JinjaValues.Iterate(a[0], line);
            if (Arg(a, k, 2, "attribute") is object attr) items = items.Select(x => Attribute(x, attr, line)).ToList();
            return string.Join(sep, items.Select(JinjaValues.Str));
        },
        ["selectattr"] = (a, _, line) => SelectAttr(a, line, keep: true),
        ["rejectattr"] = (a, _, line) => SelectAttr(a, line, keep: false),
        ["select"] = (a, _, line) => Select(a, line, keep: true),
        ["reject"] = (a, _, line) => Select(a, line, keep: false),
        ["map"] = (a, k, line) =>
        {
            var items = JinjaValues.Iterate(a[0], line);
            if (k.TryGetValue("attribute", out var attr))
                return items.Select(x => Attribute(x, attr, line) is JinjaUndefined && k.TryGetValue("default", out var dflt) ? dflt : Attribute(x, attr, line)).ToList();
            if (a.Count < 2 || a[1] is not string filter) throw new JinjaException($"map needs a filter name or attribute= (line {line})", line);
            CheckFilter(filter, line);
            return items.Select(x => ApplyFilter(filter, [x, .. a.Skip(2)], [], line)).ToList();
        },
        ["replace"] = (a, _, _) => PyReplace(JinjaValues.Str(a[0]), JinjaValues.Str(a[1]), JinjaValues.Str(a[2]), a.Count > 3 ? JinjaValues.ToLong(a[3]) : -1),
        ["int"] = (a, k, _) => a[0] switch
        {
            long l => l,
            bool b => b ? 1L : 0L,
            double d => (long)d,
            string s when long.TryParse(s.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long l) => l,
            string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => (long)d,
            _ => Arg(a, k, 1, "default", 0L),
        },
        ["float"] = (a, k, _) => a[0] switch
        {
            long l => (double)l,
            double d => d,
            bool b => b ? 1.0 : 0.0,
            string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
            _ => Arg(a, k, 1, "default", 0.0),
        },
        ["abs"] = (a, _, line) => a[0] switch
        {
            long l => (object)Math.Abs(l),
            double d => Math.Abs(d),
            bool b => b ? 1L : 0L,
            _ => throw new JinjaException($"bad operand type for abs(): '{JinjaValues.TypeName(a[0])}' (line {line})", line),
        },
        ["safe"] = (a, _, _) => a[0],
        ["escape"] = (a, _, _) => HtmlEscape(JinjaValues.Str(a[0])),
        ["e"] = (a, _, _) => HtmlEscape(JinjaValues.Str(a[0])),
        ["indent"] = (a, k, _) => Indent(JinjaValues.Str(a[0]), Arg(a, k, 1, "width", 4L), JinjaValues.Truthy(Arg(a, k, 2, "first", false)), JinjaValues.Truthy(Arg(a, k, 3, "blank", false))),
        ["tojson"] = (a, k, line) =>
        {
            if (JinjaValues.Truthy(Arg(a, k, 1, "ensure_ascii", false))) throw new JinjaUnsupportedException("tojson(ensure_ascii=true)", line);
            if (Arg(a, k, 3, "separators") is not null) throw new JinjaUnsupportedException("tojson(separators=...)", line);
            object? indent = Arg(a, k, 2, "indent");
            return JinjaValues.ToJson(a[0], indent is null ? null : (int)JinjaValues.ToLong(indent), JinjaValues.Truthy(Arg(a, k, 4, "sort_keys", false)), line);
        },
        ["attr"] = (a, _, line) => GetAttribute(a[0], JinjaValues.Str(a[1]), line),
        ["unique"] = (a, k, line) =>
        {
            var seen = new List<object?>();
            var result = new List<object?>();
            foreach (var x in JinjaValues.Iterate(a[0], line))
            {
                var key = SortKey(x, Arg(a, k, 2, "attribute"), JinjaValues.Truthy(Arg(a, k, 1, "case_sensitive", false)), line);
                if (seen.Any(s => JinjaValues.Equal(s, key))) continue;
                seen.Add(key);
                result.Add(x);
            }
            return result;
        },
        ["min"] = (a, k, line) => Extreme(a, k, line, smallest: true),
        ["max"] = (a, k, line) => Extreme(a, k, line, smallest: false),
        ["sum"] = (a, k, line) =>
        {
            object? total = Arg(a, k, 2, "start", 0L);
            object? attribute = Arg(a, k, 1, "attribute");
            foreach (var x in JinjaValues.Iterate(a[0], line))
                total = Arithmetic("+", total, attribute is null ? x : Attribute(x, attribute, line), line);
            return total;
        },
        ["dictsort"] = (a, k, line) =>
        {
            if (a[0] is not Dictionary<string, object?> d) throw new JinjaException($"dictsort needs a mapping (line {line})", line);
            bool caseSensitive = JinjaValues.Truthy(Arg(a, k, 1, "case_sensitive", false));
            int by = JinjaValues.Str(Arg(a, k, 2, "by", "key")) == "value" ? 1 : 0;
            bool reverse = JinjaValues.Truthy(Arg(a, k, 3, "reverse", false));
            var pairs = d.Select((kv, i) => (Pair: new JinjaTuple { kv.Key, kv.Value }, i)).ToList();
            pairs.Sort((p, q) =>
            {
                int c = JinjaValues.Compare(SortKey(p.Pair[by], null, caseSensitive, line), SortKey(q.Pair[by], null, caseSensitive, line), "<", line);
                return c != 0 ? (reverse ? -c : c) : p.i.CompareTo(q.i);
            });
            return pairs.Select(p => (object?)p.Pair).ToList();
        },
        ["sort"] = (a, k, line) =>
        {
            var items = JinjaValues.Iterate(a[0], line).ToList();
            bool reverse = JinjaValues.Truthy(Arg(a, k, 1, "reverse", false));
            bool caseSensitive = JinjaValues.Truthy(Arg(a, k, 2, "case_sensitive", false));
            object? attribute = Arg(a, k, 3, "attribute");
            object? Key(object? x)
            {
                var v = attribute is null ? x : Attribute(x, attribute, line);
                return !caseSensitive && v is string s ? s.ToLowerInvariant() : v;
            }
            var sorted = items.Select((x, i) => (x, i)).ToList();
            sorted.Sort((p, q) => JinjaValues.Compare(Key(p.x), Key(q.x), "<", line) is var c && c != 0 ? (reverse ? -c : c) : p.i.CompareTo(q.i));
            return sorted.Select(p => p.x).ToList();
        },
    };

    // jinja2 compares strings case-insensitively in sort/unique/min/max unless case_sensitive is set.
    private static object? SortKey(object? x, object? attribute, bool caseSensitive, int line)
    {
        var v = attribute is null ? x : Attribute(x, attribute, line);
        return !caseSensitive && v is string s ? s.ToLowerInvariant() : v;
    }

    private static object? Extreme(List<object?> a, Dictionary<string, object?> k, int line, bool smallest)
    {
        var items = JinjaValues.Iterate(a[0], line);
        if (items.Count == 0) return new JinjaUndefined($"the {(smallest ? "min" : "max")} of an empty sequence");
        bool caseSensitive = JinjaValues.Truthy(Arg(a, k, 1, "case_sensitive", false));
        object? attribute = Arg(a, k, 2, "attribute");
        var best = items[0];
        foreach (var x in items.Skip(1))
        {
            int c = JinjaValues.Compare(SortKey(x, attribute, caseSensitive, line), SortKey(best, attribute, caseSensitive, line), "<", line);
            if (smallest ? c < 0 : c > 0) best = x;
        }
        return best;
    }

    private static object? DefaultFilter(List<object?> a, Dictionary<string, object?> k, int line)
    {
        object? fallback = Arg(a, k, 1, "default_value", "");
        bool boolean = JinjaValues.Truthy(Arg(a, k, 2, "boolean", false));
        return a[0] is JinjaUndefined || (boolean && !JinjaValues.Truthy(a[0])) ? fallback : a[0];
    }

    // Attribute "a.b" or an item index, as jinja2's make_attrgetter.
    private static object? Attribute(object? x, object? attribute, int line)
    {
        if (attribute is long) return GetItem(x, attribute, line);
        foreach (var part in JinjaValues.Str(attribute).Split('.'))
            x = long.TryParse(part, out long i) ? GetItem(x, i, line) : GetItem(x, part, line);
        return x;
    }

    private static List<object?> SelectAttr(List<object?> a, int line, bool keep)
    {
        if (a.Count < 2) throw new JinjaException($"selectattr/rejectattr need an attribute name (line {line})", line);
        var items = JinjaValues.Iterate(a[0], line);
        string? test = a.Count > 2 ? JinjaValues.Str(a[2]) : null;
        if (test is not null) CheckTest(test, line);
        return items.Where(x =>
        {
            var v = Attribute(x, a[1], line);
            bool ok = test is null ? JinjaValues.Truthy(v) : ApplyTest(test, v, a.Skip(3).ToList(), line);
            return ok == keep;
        }).ToList();
    }

    private static List<object?> Select(List<object?> a, int line, bool keep)
    {
        var items = JinjaValues.Iterate(a[0], line);
        string? test = a.Count > 1 ? JinjaValues.Str(a[1]) : null;
        if (test is not null) CheckTest(test, line);
        return items.Where(x => (test is null ? JinjaValues.Truthy(x) : ApplyTest(test, x, a.Skip(2).ToList(), line)) == keep).ToList();
    }

    private static string HtmlEscape(string s) =>
        s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&#34;").Replace("'", "&#39;");

    private static string Indent(string s, object? width, bool first, bool blank)
    {
        string indention = width is string w ? w : new string(' ', (int)JinjaValues.ToLong(width));
        s += "\n"; // jinja2 adds a newline so that splitlines keeps a trailing empty line
        var lines = s.Split('\n').ToList();
        lines.RemoveAt(lines.Count - 1);
        string rv;
        if (blank) rv = string.Join("\n" + indention, lines);
        else
        {
            rv = lines[0];
            if (lines.Count > 1) rv += "\n" + string.Join("\n", lines.Skip(1).Select(l => l.Length > 0 ? indention + l : l));
        }
        return first ? indention + rv : rv;
    }

    public static void CheckFilter(string name, int line)
    {
        if (!Filters.ContainsKey(name)) throw new JinjaUnsupportedException($"the filter '{name}'", line);
    }

    public static object? ApplyFilter(string name, List<object?> args, Dictionary<string, object?> kwargs, int line)
    {
        CheckFilter(name, line);
        return Filters[name](args, kwargs, line);
    }

    // ---- tests ----

    private static readonly Dictionary<string, Func<object?, List<object?>, int, bool>> Tests = new(StringComparer.Ordinal)
    {
        ["defined"] = (v, _, _) => v is not JinjaUndefined,
        ["undefined"] = (v, _, _) => v is JinjaUndefined,
        ["none"] = (v, _, _) => v is null,
        ["string"] = (v, _, _) => v is string,
        ["mapping"] = (v, _, _) => v is Dictionary<string, object?>,
        ["iterable"] = (v, _, _) => v is string or List<object?> or Dictionary<string, object?>,
        ["sequence"] = (v, _, _) => v is string or List<object?> or Dictionary<string, object?>,
        ["number"] = (v, _, _) => v is long or double or bool,
        ["integer"] = (v, _, _) => v is long,
        ["float"] = (v, _, _) => v is double,
        ["boolean"] = (v, _, _) => v is bool,
        ["true"] = (v, _, _) => v is true,
        ["false"] = (v, _, _) => v is false,
        ["callable"] = (v, _, _) => v is JinjaCallable,
        ["odd"] = (v, _, _) => JinjaValues.ToLong(v) % 2 != 0,
        ["even"] = (v, _, _) => JinjaValues.ToLong(v) % 2 == 0,
        ["divisibleby"] = (v, a, _) => JinjaValues.ToLong(v) % JinjaValues.ToLong(a[0]) == 0,
        ["eq"] = (v, a, _) => JinjaValues.Equal(v, a[0]),
        ["equalto"] = (v, a, _) => JinjaValues.Equal(v, a[0]),
        ["=="] = (v, a, _) => JinjaValues.Equal(v, a[0]),
        ["ne"] = (v, a, _) => !JinjaValues.Equal(v, a[0]),
        ["!="] = (v, a, _) => !JinjaValues.Equal(v, a[0]),
        ["lt"] = (v, a, line) => JinjaValues.Compare(v, a[0], "<", line) < 0,
        ["<"] = (v, a, line) => JinjaValues.Compare(v, a[0], "<", line) < 0,
        ["le"] = (v, a, line) => JinjaValues.Compare(v, a[0], "<=", line) <= 0,
        ["<="] = (v, a, line) => JinjaValues.Compare(v, a[0], "<=", line) <= 0,
        ["gt"] = (v, a, line) => JinjaValues.Compare(v, a[0], ">", line) > 0,
        [">"] = (v, a, line) => JinjaValues.Compare(v, a[0], ">", line) > 0,
        ["ge"] = (v, a, line) => JinjaValues.Compare(v, a[0], ">=", line) >= 0,
        [">="] = (v, a, line) => JinjaValues.Compare(v, a[0], ">=", line) >= 0,
        ["in"] = (v, a, line) => Contains(a[0], v, line),
        ["sameas"] = (v, a, _) => v is null || v is bool ? Equals(v, a[0]) : ReferenceEquals(v, a[0]),
        ["lower"] = (v, _, _) => v is string s && s == s.ToLowerInvariant(),
        ["upper"] = (v, _, _) => v is string s && s == s.ToUpperInvariant(),
    };

    public static void CheckTest(string name, int line)
    {
        if (!Tests.ContainsKey(name)) throw new JinjaUnsupportedException($"the test '{name}'", line);
    }

    public static bool ApplyTest(string name, object? value, List<object?> args, int line)
    {
        CheckTest(name, line);
        var test = Tests[name];
        return test(value, args, line);
    }
}
