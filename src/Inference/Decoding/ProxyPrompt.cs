using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Inference.Decoding;

/// <summary>
/// A request's prompt and how each model of a combination sees it (the paper's setup): experts get it
/// through their chat template, then an optional response prefix (the reference's <c>chat_response_prefix</c>,
/// e.g. "Answer:"); the base and the anti-experts get the plain text inside an optional answer cue
/// (e.g. "Question: {prompt}\nAnswer:"), so an untuned model is asked zero-shot in a form it can continue.
/// The generated text is what follows the prompt; neither the cue nor the prefix is part of it.
/// The single-process decoder and the model grains both tokenize through here, so both paths prefill the same ids.
/// </summary>
public sealed record ProxyPrompt
{
    /// <summary>A plain prompt (completions). Either this or <see cref="Messages"/>.</summary>
    public string? Text { get; init; }

    /// <summary>A conversation (chat completions). Either this or <see cref="Text"/>.</summary>
    public IReadOnlyList<ChatMessage>? Messages { get; init; }

    /// <summary>Render the experts' prompt with their chat template when they have one (default on).</summary>
    public bool ExpertChatTemplate { get; init; } = true;

    /// <summary>
    /// How the base and the anti-experts see the prompt: <see cref="PromptPlaceholder"/> is replaced by the plain
    /// text (e.g. "Question: {prompt}\nAnswer:"). Null: the plain text as it is.
    /// </summary>
    public string? AnswerCue { get; init; }

    /// <summary>Text appended after the expert's rendered chat template (e.g. "Answer:"). Null: nothing.</summary>
    public string? ExpertResponsePrefix { get; init; }

    /// <summary>
    /// The base sees the prompt as an expert does (chat template, response prefix): for a tuned model served alone,
    /// such as tuned-large as the directly tuned upper bound. Off by default: a proxy-tuned base is untuned.
    /// </summary>
    public bool BaseChatTemplate { get; init; }

    /// <summary>The placeholder an <see cref="AnswerCue"/> must contain once.</summary>
    public const string PromptPlaceholder = "{prompt}";

    /// <summary>The reference's zero-shot question format for untuned models.</summary>
    public const string QuestionAnswerCue = "Question: {prompt}\nAnswer:";

    /// <summary>
    /// The prompt as sent, read alike by every model (no chat template, answer cue or response prefix): how a prompt is
    /// scored (echo), so that all models score the same tokens and the echoed text is the prompt itself.
    /// </summary>
    public ProxyPrompt AsSent() => this with { ExpertChatTemplate = false, AnswerCue = null, ExpertResponsePrefix = null, BaseChatTemplate = false };

    public static ProxyPrompt FromText(string text) => new() { Text = text ?? throw new ArgumentNullException(nameof(text)) };

    public static ProxyPrompt FromMessages(IReadOnlyList<ChatMessage> messages) =>
        new() { Messages = messages ?? throw new ArgumentNullException(nameof(messages)) };

    /// <summary>The text the base and anti-experts see: the prompt, or the messages' contents one per line.</summary>
    public string PlainText => Text ?? string.Join("\n", Messages!.Select(m => m.Content));

    /// <summary>The conversation an expert's chat template renders: the messages, or the prompt as one user turn.</summary>
    public IReadOnlyList<ChatMessage> Conversation => Messages ?? [new ChatMessage("user", Text!)];

    /// <summary>The text the base and anti-experts are prefilled with: the plain text inside the answer cue, if any.</summary>
    public string CuedPlainText => AnswerCue is null ? PlainText : AnswerCue.Replace(PromptPlaceholder, PlainText, StringComparison.Ordinal);

    /// <summary>Prompt ids for the base model or an anti-expert: the (cued) plain text with BOS.</summary>
    public int[] PlainTokens(ITextTokenizer tokenizer)
    {
        Validate();
        return NonEmpty(tokenizer.Encode(CuedPlainText, addBos: true, parseSpecialTokens: false));
    }

    /// <summary>Prompt ids for the base model: <see cref="PlainTokens"/>, or <see cref="ExpertTokens"/> with <see cref="BaseChatTemplate"/>.</summary>
    public int[] BaseTokens(ITextTokenizer tokenizer) => BaseChatTemplate ? ExpertTokens(tokenizer) : PlainTokens(tokenizer);

    /// <summary>
    /// Prompt ids for an expert: its chat template rendered with the generation prompt, tokenized as HF's
    /// apply_chat_template does (special tokens in the text parsed, no extra BOS: the template writes its own);
    /// the plain prompt when the expert has no template or templates are off.
    /// </summary>
    public int[] ExpertTokens(ITextTokenizer tokenizer)
    {
        Validate();
        if (!ExpertChatTemplate || tokenizer.ChatTemplate is not IChatTemplate template) return PlainTokens(tokenizer);
        string rendered = template.Render(Conversation, addGenerationPrompt: true) + (ExpertResponsePrefix ?? "");
        return NonEmpty(tokenizer.Encode(rendered, addBos: false, parseSpecialTokens: true));
    }

    private void Validate()
    {
        if ((Text is null) == (Messages is null))
            throw new ArgumentException("Give either a prompt text or chat messages, not both or neither.");
        if (Messages is { Count: 0 }) throw new ArgumentException("The chat has no messages.");
        if (AnswerCue is not null && CountOf(AnswerCue, PromptPlaceholder) != 1)
            throw new ArgumentException($"The answer cue must contain {PromptPlaceholder} exactly once (where the prompt goes), e.g. \"{QuestionAnswerCue.Replace("\n", "\\n")}\"; got \"{AnswerCue.Replace("\n", "\\n")}\".");
    }

    private static int CountOf(string s, string part)
    {
        int n = 0;
        for (int i = s.IndexOf(part, StringComparison.Ordinal); i >= 0; i = s.IndexOf(part, i + part.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    private static int[] NonEmpty(int[] ids) => ids.Length > 0 ? ids
        : throw new ArgumentException("The prompt is empty and the tokenizer adds no BOS token: there is nothing to condition on.");
}
