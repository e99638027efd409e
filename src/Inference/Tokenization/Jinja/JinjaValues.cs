using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ProxyOrleans.Inference.Tokenization.Jinja;

/// <summary>jinja2's Undefined: renders as "", is falsy and iterates as empty; looking into it is an error.</summary>
internal sealed class JinjaUndefined(string description)
{
    public string Description { get; } = description;
}

/// <summary>namespace(): the one object whose attributes {% set ns.x = ... %} may change across scopes.</summary>
internal sealed class JinjaNamespace
{
    public Dictionary<string, object?> Attributes { get; } = new(StringComparer.Ordinal);
}

/// <summary>A Python tuple (dict items, "a, b"): a list that prints as (a, b).</summary>
internal sealed class JinjaTuple : List<object?>;

internal delegate object? JinjaCallable(List<object?> args, Dictionary<string, object?> kwargs);

/// <summary>The value model (None = null, bool, long, double, string, List, Dictionary) and Python's behaviour on it.</summary>
internal static class JinjaValues
{
    /// <summary>A .NET value as a template value: lists and dictionaries are copied into List / Dictionary.</summary>
    public static object? Import(object? value) => value switch
    {
        null => null,
        string or bool or long or double or JinjaUndefined or JinjaNamespace or JinjaCallable => value,
        int i => (long)i,
        short s => (long)s,
        byte b => (long)b,
        float f => (double)f,
        decimal d => (double)d,
        ChatMessage m => new Dictionary<string, object?>(StringComparer.Ordinal) { ["role"] = m.Role, ["content"] = m.Content },
        JsonNode node => FromJson(node),
        JsonElement e => FromJson(JsonNode.Parse(e.GetRawText())),
        IDictionary<string, object?> d => d.ToDictionary(kv => kv.Key, kv => Import(kv.Value), StringComparer.Ordinal),
        IReadOnlyDictionary<string, object?> d => d.ToDictionary(kv => kv.Key, kv => Import(kv.Value), StringComparer.Ordinal),
        IDictionary d => d.Keys.Cast<object>().ToDictionary(k => Convert.ToString(k, CultureInfo.InvariantCulture)!, k => Import(d[k]), StringComparer.Ordinal),
        IEnumerable e => e.Cast<object?>().Select(Import).ToList(),
        _ => throw new ArgumentException($"A template variable of type {value.GetType().Name} cannot be passed to a Jinja template; pass strings, numbers, bools, lists or dictionaries."),
    };

    private static object? FromJson(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => o.ToDictionary(kv => kv.Key, kv => FromJson(kv.Value), StringComparer.Ordinal),
        JsonArray a => a.Select(FromJson).ToList(),
        JsonValue v when v.TryGetValue(out bool b) => b,
        JsonValue v when v.TryGetValue(out long l) => l,
        JsonValue v when v.TryGetValue(out double d) => d,
        JsonValue v => v.GetValue<string>(),
        _ => null,
    };

    public static bool Truthy(object? v) => v switch
    {
        null or JinjaUndefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        Dictionary<string, object?> d => d.Count > 0,
        _ => true,
    };

    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        JinjaUndefined => "Undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        Dictionary<string, object?> => "dict",
        JinjaNamespace => "Namespace",
        JinjaCallable => "function",
        LoopInfo => "LoopContext",
        _ => v.GetType().Name,
    };

    /// <summary>Python's str(): what {{ value }} writes.</summary>
    public static string Str(object? v) => v switch
    {
        string s => s,
        JinjaUndefined => "",
        _ => Repr(v),
    };

    /// <summary>Python's repr() (lists and dicts print their items this way).</summary>
    public static string Repr(object? v) => v switch
    {
        null => "None",
        JinjaUndefined => "",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FloatRepr(d),
        string s => StringRepr(s),
        JinjaTuple t => t.Count == 1 ? "(" + Repr(t[0]) + ",)" : "(" + string.Join(", ", t.Select(Repr)) + ")",
        List<object?> l => "[" + string.Join(", ", l.Select(Repr)) + "]",
        Dictionary<string, object?> d => "{" + string.Join(", ", d.Select(kv => StringRepr(kv.Key) + ": " + Repr(kv.Value))) + "}",
        JinjaNamespace n => "<Namespace " + string.Join(", ", n.Attributes.Select(kv => kv.Key + "=" + Repr(kv.Value))) + ">",
        _ => "<" + TypeName(v) + ">",
    };

    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        if (d == Math.Floor(d) && Math.Abs(d) < 1e16) return d.ToString("0.0", CultureInfo.InvariantCulture);
        string r = d.ToString("R", CultureInfo.InvariantCulture);
        int e = r.IndexOf('E');
        if (e < 0) return r;
        // Python writes 1e+20 / 1e-05: the exponent keeps its sign and at least two digits.
        string mantissa = r[..e], exp = r[(e + 1)..];
        char sign = exp[0] == '-' ? '-' : '+';
        exp = exp.TrimStart('+', '-').PadLeft(2, '0');
        return mantissa + "e" + sign + exp;
    }

    private static string StringRepr(string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var sb = new StringBuilder().Append(quote);
        foreach (char c in s)
        {
            switch (c)
            {
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c == quote) sb.Append('\\').Append(c);
                    else if (c < 0x20 || c == 0x7f) sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        return sb.Append(quote).ToString();
    }

    /// <summary>Python's ==.</summary>
    public static bool Equal(object? a, object? b)
    {
        if (a is JinjaUndefined || b is JinjaUndefined) return a is JinjaUndefined && b is JinjaUndefined;
        if (a is null || b is null) return a is null && b is null;
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? ToDouble(a) == ToDouble(b) : ToLong(a) == ToLong(b);
        return (a, b) switch
        {
            (string x, string y) => string.Equals(x, y, StringComparison.Ordinal),
            (List<object?> x, List<object?> y) => x.Count == y.Count && x.Zip(y).All(p => Equal(p.First, p.Second)),
            (Dictionary<string, object?> x, Dictionary<string, object?> y) =>
                x.Count == y.Count && x.All(kv => y.TryGetValue(kv.Key, out var o) && Equal(kv.Value, o)),
            _ => ReferenceEquals(a, b),
        };
    }

    /// <summary>Python's ordering for numbers, strings and lists; anything else is a TypeError.</summary>
    public static int Compare(object? a, object? b, string op, int line)
    {
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? ToDouble(a).CompareTo(ToDouble(b)) : ToLong(a).CompareTo(ToLong(b));
        if (a is string x && b is string y) return string.CompareOrdinal(x, y) switch { < 0 => -1, > 0 => 1, _ => 0 };
        if (a is List<object?> l && b is List<object?> m)
        {
            for (int i = 0; i < Math.Min(l.Count, m.Count); i++)
                if (!Equal(l[i], m[i])) return Compare(l[i], m[i], op, line);
            return l.Count.CompareTo(m.Count);
        }
        throw new JinjaException($"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}' (line {line})", line);
    }

    public static bool IsNumber(object? v) => v is long or double or bool;
    public static double ToDouble(object? v) => v switch { long l => l, double d => d, bool b => b ? 1 : 0, _ => 0 };
    public static long ToLong(object? v) => v switch { long l => l, double d => (long)d, bool b => b ? 1 : 0, _ => 0 };

    /// <summary>The items a for loop (or list()) sees: a list's items, a dict's keys, a string's characters.</summary>
    public static List<object?> Iterate(object? v, int line) => v switch
    {
        JinjaUndefined => [],
        List<object?> l => l,
        Dictionary<string, object?> d => d.Keys.Cast<object?>().ToList(),
        string s => TextElements(s),
        _ => throw new JinjaException($"'{TypeName(v)}' object is not iterable (line {line})", line),
    };

    // Python iterates code points; a surrogate pair stays one item.
    public static List<object?> TextElements(string s)
    {
        var items = new List<object?>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { items.Add(s.Substring(i, 2)); i++; }
            else items.Add(s[i].ToString());
        }
        return items;
    }

    public static long Length(object? v, int line) => v switch
    {
        string s => s.EnumerateRunes().Count(),
        List<object?> l => l.Count,
        Dictionary<string, object?> d => d.Count,
        JinjaUndefined => 0,
        _ => throw new JinjaException($"object of type '{TypeName(v)}' has no len() (line {line})", line),
    };

    /// <summary>Python's json.dumps(value, ensure_ascii=False, indent=indent, separators=None, sort_keys=sortKeys), as HF's tojson.</summary>
    public static string ToJson(object? v, int? indent, bool sortKeys, int line)
    {
        var sb = new StringBuilder();
        WriteJson(sb, v, indent, sortKeys, 0, line);
        return sb.ToString();
    }

    private static void WriteJson(StringBuilder sb, object? v, int? indent, bool sortKeys, int depth, int line)
    {
        string itemSep = indent is null ? ", " : ",";
        switch (v)
        {
            case null: sb.Append("null"); break;
            case bool b: sb.Append(b ? "true" : "false"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d:
                sb.Append(double.IsNaN(d) ? "NaN" : double.IsInfinity(d) ? (d > 0 ? "Infinity" : "-Infinity") : FloatRepr(d));
                break;
            case string s: JsonString(sb, s); break;
            case List<object?> list:
                if (list.Count == 0) { sb.Append("[]"); break; }
                sb.Append('[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(itemSep);
                    NewLine(sb, indent, depth + 1);
                    WriteJson(sb, list[i], indent, sortKeys, depth + 1, line);
                }
                NewLine(sb, indent, depth);
                sb.Append(']');
                break;
            case Dictionary<string, object?> dict:
                if (dict.Count == 0) { sb.Append("{}"); break; }
                sb.Append('{');
                int n = 0;
                IEnumerable<KeyValuePair<string, object?>> pairs = sortKeys ? dict.OrderBy(kv => kv.Key, StringComparer.Ordinal) : dict;
                foreach (var (key, value) in pairs)
                {
                    if (n++ > 0) sb.Append(itemSep);
                    NewLine(sb, indent, depth + 1);
                    JsonString(sb, key);
                    sb.Append(": ");
                    WriteJson(sb, value, indent, sortKeys, depth + 1, line);
                }
                NewLine(sb, indent, depth);
                sb.Append('}');
                break;
            case JinjaUndefined u:
                throw new JinjaException($"{u.Description} is undefined and cannot be written as JSON (line {line})", line);
            default:
                throw new JinjaException($"Object of type {TypeName(v)} is not JSON serializable (line {line})", line);
        }
    }

    private static void NewLine(StringBuilder sb, int? indent, int depth)
    {
        if (indent is int n) sb.Append('\n').Append(' ', n * depth);
    }

    private static void JsonString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
