using System.Text;

namespace ProxyOrleans.Inference.Tokenization.Jinja;

/// <summary>jinja2 Environment settings; the defaults are Hugging Face's for chat templates.</summary>
public sealed record JinjaOptions
{
    /// <summary>A block tag eats the one newline after it (HF: on).</summary>
    public bool TrimBlocks { get; init; } = true;
    /// <summary>Spaces and tabs before a block tag at the start of a line are dropped (HF: on).</summary>
    public bool LstripBlocks { get; init; } = true;
    /// <summary>The clock behind strftime_now (tests pin it).</summary>
    public Func<DateTime>? Now { get; init; }
}

/// <summary>The template cannot be parsed or rendered (a syntax error, a type error, an undefined value used).</summary>
public class JinjaException(string message, int line) : InvalidOperationException(message)
{
    public int Line { get; } = line;
}

/// <summary>The template uses a Jinja construct this interpreter does not implement.</summary>
public sealed class JinjaUnsupportedException(string construct, int line)
    : JinjaException($"{construct} (line {line}) is not supported by this Jinja renderer", line)
{
    public string Construct { get; } = construct;
}

/// <summary>The template called raise_exception(message): the input (e.g. the conversation) is not one it accepts.</summary>
public sealed class JinjaRaisedException(string message) : ArgumentException(message);

/// <summary>
/// A parsed Jinja template: the subset Hugging Face chat templates use (output, if/elif/else, for with loop.* and
/// else, set incl. namespace() and block set, macro, break/continue, filter blocks, raw; the filters, tests and
/// str/dict methods in <see cref="JinjaBuiltins"/>), rendered with jinja2's semantics. Anything else is refused at
/// parse time with <see cref="JinjaUnsupportedException"/>, never rendered approximately.
/// </summary>
public sealed class JinjaTemplate
{
    private readonly List<Node> body;
    private readonly JinjaOptions options;

    private JinjaTemplate(List<Node> body, JinjaOptions options) { this.body = body; this.options = options; }

    public static JinjaTemplate Parse(string source, JinjaOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        options ??= new JinjaOptions();
        return new JinjaTemplate(JinjaParser.Parse(source, options), options);
    }

    /// <summary>
    /// Renders with the given variables: strings, bools, numbers, null (None), lists (IEnumerable) and
    /// dictionaries with string keys (IDictionary / IReadOnlyDictionary, insertion order kept), nested freely.
    /// </summary>
    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        var renderer = new JinjaRenderer(options);
        var scope = renderer.GlobalScope();
        foreach (var (name, value) in variables) scope.Set(name, JinjaValues.Import(value));
        var sb = new StringBuilder();
        renderer.Run(body, scope, sb);
        return sb.ToString();
    }
}
