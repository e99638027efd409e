using ProxyOrleans.Inference.Tokenization.Jinja;

namespace ProxyOrleans.Inference.Tokenization;

/// <summary>
/// A model's own chat_template (tokenizer_config.json or chat_template.jinja), rendered as Hugging Face's
/// apply_chat_template renders it: jinja2 with trim_blocks and lstrip_blocks, raise_exception and strftime_now,
/// variables messages, add_generation_prompt, tools=None, documents=None, bos_token and eos_token.
/// </summary>
public sealed class JinjaChatTemplate : IChatTemplate
{
    public const string TemplateName = "jinja";

    private readonly JinjaTemplate template;
    private readonly string? bosToken, eosToken;
    private readonly string source;

    /// <param name="jinja">The template text.</param>
    /// <param name="bosToken">The model's BOS string; left undefined in the template when null, as HF does.</param>
    /// <param name="eosToken">The model's EOS string; left undefined when null.</param>
    /// <param name="source">Where the template came from, for error messages.</param>
    /// <param name="options">jinja2 settings; the default is HF's.</param>
    /// <exception cref="InvalidDataException">The template does not parse or uses a construct this renderer lacks.</exception>
    public JinjaChatTemplate(string jinja, string? bosToken, string? eosToken, string source = "tokenizer_config.json", JinjaOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(jinja);
        this.bosToken = bosToken;
        this.eosToken = eosToken;
        this.source = source;
        Source = jinja;
        try { template = JinjaTemplate.Parse(jinja, options); }
        catch (JinjaException e) { throw Explain(e); }
        EndOfTurnToken = FindEndOfTurn(jinja, eosToken);
    }

    public string Name => TemplateName;

    /// <summary>The Jinja text this renders.</summary>
    public string Source { get; }

    public string? EndOfTurnToken { get; }

    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) => Render(messages, addGenerationPrompt, null);

    /// <summary>Renders with extra template variables (e.g. Qwen3's enable_thinking), as apply_chat_template's kwargs.</summary>
    /// <exception cref="ArgumentException">The template's raise_exception refused the conversation.</exception>
    /// <exception cref="InvalidDataException">The template failed on this input (a type error, an undefined value).</exception>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? variables)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var all = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = messages,
            ["add_generation_prompt"] = addGenerationPrompt,
            ["tools"] = null,
            ["documents"] = null,
        };
        if (bosToken is not null) all["bos_token"] = bosToken;
        if (eosToken is not null) all["eos_token"] = eosToken;
        if (variables is not null) foreach (var (k, v) in variables) all[k] = v;
        try { return template.Render(all); }
        catch (JinjaException e) { throw Explain(e); }
    }

    private InvalidDataException Explain(JinjaException e)
    {
        string what = e is JinjaUnsupportedException u
            ? $"the chat_template uses {u.Construct} (line {u.Line}), which the built-in Jinja renderer does not support"
            : $"the chat_template cannot be rendered: {e.Message}";
        return new InvalidDataException(
            $"{source}: {what}. Render this model with a built-in family instead ({string.Join(", ", ChatTemplates.Names)}: " +
            "TokenizerLoader.Load(dir, chatTemplate: name), on the command line --chat-template name, on a silo " +
            "ProxyOrleans:Models:N:ChatTemplate=name), or put a chat_template.jinja " +
            "without that construct beside tokenizer_config.json.", e);
    }

    // The token that closes an assistant turn: the family's end-of-turn marker where the template writes one.
    private static string? FindEndOfTurn(string jinja, string? eosToken)
    {
        foreach (var marker in new[] { "<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<|end|>" })
            if (jinja.Contains(marker, StringComparison.Ordinal)) return marker;
        return eosToken;
    }
}
