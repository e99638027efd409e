using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Inference.Decoding;

/// <summary>
/// A request's prompt and how each model of a combination sees it (the paper's setup): experts get it
/// through their chat template, then an optional response prefix (the reference's <c>chat_response_prefix</c>,
/// e.g. "Answer:"); the base and the anti-experts get the plain text inside an optional answer cue
/// (e.g. "Question: {prompt}\nAnswer:"), so an untuned model is asked zero-shot in a form it can continue.
/// The generated text is what follows the prompt; neither the cue nor the prefix is part of it.
/// A prompt may also come as token ids of the base's vocabulary (<see cref="TokenIds"/>): read as given, never cued.
/// The single-process decoder and the model grains both tokenize through here, so both paths prefill the same ids.
/// </summary>
public sealed record ProxyPrompt
{
    /// <summary>A plain prompt (completions). One of this, <see cref="Messages"/> or <see cref="TokenIds"/>.</summary>
    public string? Text { get; init; }

    /// <summary>A conversation (chat completions). One of this, <see cref="Text"/> or <see cref="TokenIds"/>.</summary>
    public IReadOnlyList<ChatMessage>? Messages { get; init; }

    /// <summary>
    /// A prompt already tokenized in the base model's vocabulary (completions' <c>"prompt": [ids]</c>, what evaluation
    /// harnesses send). The base and the anti-experts read these ids as given, BOS included only if sent; they are never
    /// re-tokenized, so no answer cue can wrap them (one that would apply is refused, see <see cref="TokenIdsCueProblem"/>).
    /// An expert whose chat template applies reads the ids decoded to text inside its template (a template renders text);
    /// otherwise it reads the same ids (the vocabularies of a combination are checked identical).
    /// </summary>
    public int[]? TokenIds { get; init; }

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

    /// <summary>The placeholder an <see cref="AnswerCue"/> must contain once (the rule: src/Shared/AnswerCueRule.cs).</summary>
    public const string PromptPlaceholder = AnswerCueRule.Placeholder;

    /// <summary>The reference's zero-shot question format for untuned models.</summary>
    public const string QuestionAnswerCue = AnswerCueRule.QuestionAnswerCue;

    /// <summary>
    /// The prompt as sent, read alike by every model (no chat template, answer cue or response prefix): how a prompt is
    /// scored (echo), so that all models score the same tokens and the echoed text is the prompt itself.
    /// </summary>
    public ProxyPrompt AsSent() => this with { ExpertChatTemplate = false, AnswerCue = null, ExpertResponsePrefix = null, BaseChatTemplate = false };

    public static ProxyPrompt FromText(string text) => new() { Text = text ?? throw new ArgumentNullException(nameof(text)) };

    public static ProxyPrompt FromMessages(IReadOnlyList<ChatMessage> messages) =>
        new() { Messages = messages ?? throw new ArgumentNullException(nameof(messages)) };

    public static ProxyPrompt FromTokenIds(int[] ids) => new() { TokenIds = ids ?? throw new ArgumentNullException(nameof(ids)) };

    /// <summary>The text the base and anti-experts see: the prompt, or the messages' contents one per line.</summary>
    public string PlainText => Text ?? (Messages is not null ? string.Join("\n", Messages.Select(m => m.Content))
        : throw new InvalidOperationException("A token-id prompt has no text of its own; PlainTokens reads its ids."));

    /// <summary>The conversation an expert's chat template renders: the messages, or the prompt as one user turn.</summary>
    public IReadOnlyList<ChatMessage> Conversation => Messages ?? [new ChatMessage("user", Text!)];

    /// <summary>
    /// Why this combination of an answer cue and <see cref="TokenIds"/> cannot run (null: it can). Ids are read as
    /// given: wrapping them in a cue would mean decoding and re-tokenizing them, which can change the very ids a
    /// harness sent (and scores, and counts) without telling it. The bare cue "{prompt}" changes nothing and is allowed.
    /// </summary>
    public static string? TokenIdsCueProblem(string? answerCue) => answerCue is null || answerCue == PromptPlaceholder ? null
        : $"A token-id prompt is read as the ids given, so the answer cue \"{answerCue.Replace("\n", "\\n")}\" cannot wrap it. " +
          $"Send \"proxy\": {{\"answer_cue\": \"{PromptPlaceholder}\"}} to read the ids bare, or send the prompt as text to have it cued.";

    /// <summary>The text the base and anti-experts are prefilled with: the plain text inside the answer cue, if any.</summary>
    public string CuedPlainText => AnswerCue is null ? PlainText : AnswerCue.Replace(PromptPlaceholder, PlainText, StringComparison.Ordinal);

    /// <summary>Prompt ids for the base model or an anti-expert: the (cued) plain text with BOS.</summary>
    public int[] PlainTokens(ITextTokenizer tokenizer)
    {
        Validate();
        if (TokenIds is not null) return CheckedIds(tokenizer);
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
        // Ids decoded without special tokens: the template writes the BOS and turn markers itself.
        var conversation = TokenIds is not null ? [new ChatMessage("user", tokenizer.Decode(CheckedIds(tokenizer), skipSpecialTokens: true))] : Conversation;
        string rendered = template.Render(conversation, addGenerationPrompt: true) + (ExpertResponsePrefix ?? "");
        return NonEmpty(tokenizer.Encode(rendered, addBos: false, parseSpecialTokens: true));
    }

    private void Validate()
    {
        if ((Text is not null ? 1 : 0) + (Messages is not null ? 1 : 0) + (TokenIds is not null ? 1 : 0) != 1)
            throw new ArgumentException("Give one of a prompt text, chat messages or prompt token ids.");
        if (Messages is { Count: 0 }) throw new ArgumentException("The chat has no messages.");
        if (TokenIds is { Length: 0 }) throw new ArgumentException("The token-id prompt is an empty list: send at least one id.");
        if (TokenIds is not null && TokenIdsCueProblem(AnswerCue) is { } cueProblem) throw new ArgumentException(cueProblem);
        if (AnswerCueRule.Problem(AnswerCue) is { } cueRuleProblem) throw new ArgumentException(cueRuleProblem);
    }

    /// <summary><see cref="TokenIds"/>, each checked to be an id of <paramref name="tokenizer"/>'s vocabulary.</summary>
    private int[] CheckedIds(ITextTokenizer tokenizer)
    {
        for (int i = 0; i < TokenIds!.Length; i++)
            if (TokenIds[i] < 0 || TokenIds[i] >= tokenizer.VocabSize)
                throw new ArgumentException($"Prompt token id {TokenIds[i]} (at position {i}) is outside the vocabulary: ids run from 0 to {tokenizer.VocabSize - 1}. " +
                                            "Tokenize with the base model's tokenizer (POST /tokenize).");
        return TokenIds;
    }

    private static int[] NonEmpty(int[] ids) => ids.Length > 0 ? ids
        : throw new ArgumentException("The prompt is empty and the tokenizer adds no BOS token: there is nothing to condition on.");
}
