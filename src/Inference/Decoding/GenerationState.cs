using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Inference.Decoding;

/// <summary>What one step produced: the token, the text it released (possibly empty) and whether it ended the run.</summary>
public readonly record struct StepOutcome(int TokenId, string TextDelta, FinishReason Finish)
{
    public bool IsFinal => Finish != FinishReason.None;
}

/// <summary>
/// Everything needed to continue a generation elsewhere: the generated tokens and the seed. With the same
/// prompt and options, <see cref="GenerationState.Resume"/> rebuilds the state, and the next step draws the
/// same random number it would have drawn (randomness is keyed by (seed, step), step = tokens so far).
/// </summary>
public sealed record GenerationCheckpoint(ulong Seed, int[] GeneratedTokens);

/// <summary>
/// The decoding side of one generation, independent of where the logits come from: token history, step
/// index, logits processors (<see cref="LogitsProcessors"/>, fed the history), sampling, EOS, stop token ids, max
/// tokens, the context window, stop sequences and streaming detokenization. The single-process
/// <see cref="ProxyDecoder"/> and the Orleans coordinator grain both drive it through <see cref="ProxyStep.Advance"/>
/// (combine, then <see cref="Advance"/>(combined logits)), so both paths run the same code.
/// <para>Text: ids become text through <see cref="StreamingDetokenizer"/> (prompt context so the first word keeps
/// its SentencePiece space; incomplete UTF-8 characters held back). On top of that, text is held back while its
/// end could be the start of a stop sequence; when a stop sequence appears the text is cut just before it and
/// the stop sequence is never emitted.</para>
/// </summary>
public sealed class GenerationState
{
    private readonly ITextTokenizer tokenizer;
    private readonly StreamingDetokenizer detokenizer;
    private readonly HashSet<int> eosTokenIds;
    private readonly HashSet<int> stopTokenIds;
    private readonly LogitsProcessors processors;
    private float[] processed = []; // the combined logits after the processors (scratch, reused every step)
    private readonly List<int> generated = [];
    private readonly int maxStopLength;
    private string text = "";   // text the detokenizer has produced (whole characters only)
    private int emitted;        // characters of `text` already released

    /// <param name="tokenizer">The base model's tokenizer (all models of a combination share the vocabulary).</param>
    /// <param name="options">Sampling and stopping options (validated here).</param>
    /// <param name="promptTokens">The base model's prompt ids; its last tokens give the completion its context.</param>
    /// <param name="eosTokenIds">End-of-sequence ids; defaults to the tokenizer's (EOS plus config.json's eos_token_id list).</param>
    /// <param name="contextRoom">
    /// Tokens that fit after the prompt in the tightest model's context: min over models of
    /// (max_position_embeddings − that model's prompt length). The generation ends with Length when prompt plus
    /// completion fill it (the last token is sampled but never needs a position).
    /// </param>
    public GenerationState(ITextTokenizer tokenizer, SamplingOptions options, ReadOnlySpan<int> promptTokens = default,
        IEnumerable<int>? eosTokenIds = null, int contextRoom = int.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        Sampler.Validate(options);
        LogitsProcessors.CheckTokenIds(options, tokenizer.VocabSize);
        if (contextRoom < 1)
            throw new ContextLengthExceededException("The prompt leaves no room in the model's context window: shorten the prompt.");
        ContextRoom = contextRoom;
        this.tokenizer = tokenizer;
        Options = options;
        Seed = options.Seed ?? Sampler.NewSeed();
        detokenizer = new StreamingDetokenizer(tokenizer, promptTokens);
        this.eosTokenIds = [.. eosTokenIds ?? tokenizer.EosTokenIds];
        maxStopLength = options.Stop.Count == 0 ? 0 : options.Stop.Max(s => s.Length);
        stopTokenIds = [.. options.StopTokenIds];
        processors = new LogitsProcessors(options, promptTokens);
        // No tokens asked for: only the prompt is scored (echo with max_tokens 0); nothing is ever sampled.
        if (options.MaxNewTokens == 0) FinishReason = FinishReason.Length;
    }

    /// <summary>Rebuilds a generation from its checkpoint (same tokenizer, prompt and options as the original).</summary>
    public static GenerationState Resume(ITextTokenizer tokenizer, SamplingOptions options, GenerationCheckpoint checkpoint,
        ReadOnlySpan<int> promptTokens = default, IEnumerable<int>? eosTokenIds = null, int contextRoom = int.MaxValue)
    {
        var state = new GenerationState(tokenizer, options with { Seed = checkpoint.Seed }, promptTokens, eosTokenIds, contextRoom);
        foreach (int token in checkpoint.GeneratedTokens)
        {
            if (state.IsFinished)
                throw new ArgumentException("The checkpoint holds tokens after the generation had already finished.", nameof(checkpoint));
            state.Accept(token);
        }
        return state;
    }

    public SamplingOptions Options { get; }

    /// <summary>The logits processors <see cref="Choose"/> applies, with the output counts the penalties read.</summary>
    public LogitsProcessors Processors => processors;

    /// <summary>Tokens that fit after the prompt in the tightest model's context (int.MaxValue: no limit given).</summary>
    public int ContextRoom { get; }

    /// <summary>The seed in use: the request's, or one chosen at random at the start (report it to repeat the run).</summary>
    public ulong Seed { get; }

    /// <summary>Index of the next step = number of tokens generated so far.</summary>
    public int Step => generated.Count;

    public IReadOnlyList<int> GeneratedTokens => generated;

    /// <summary>Text released so far (the concatenation of all deltas).</summary>
    public string Text => text[..emitted];

    public FinishReason FinishReason { get; private set; } = FinishReason.None;
    public bool IsFinished => FinishReason != FinishReason.None;

    public GenerationCheckpoint Checkpoint() => new(Seed, [.. generated]);

    /// <summary>
    /// The token that step <see cref="Step"/> picks from these combined logits (no state change): the
    /// <see cref="LogitsProcessors"/> (bias, penalties over this generation's history), then the <see cref="Sampler"/>.
    /// Logit rows past the tokenizer's vocabulary (padding rows many checkpoints carry) are never picked: no text exists for them.
    /// </summary>
    public int Choose(ReadOnlySpan<float> combinedLogits)
    {
        var logits = Candidates(combinedLogits);
        if (processors.IsActive)
        {
            if (processed.Length != logits.Length) processed = new float[logits.Length];
            logits.CopyTo(processed);
            processors.Apply(processed);
            logits = processed;
        }
        return Sampler.Sample(logits, Options, Seed, Step);
    }

    /// <summary>The logits of the tokens a step may pick: the rows the tokenizer has text for (padding rows cut off).</summary>
    public ReadOnlySpan<float> Candidates(ReadOnlySpan<float> combinedLogits) => combinedLogits[..Math.Min(combinedLogits.Length, tokenizer.VocabSize)];

    /// <summary>Samples the next token from the combined logits and appends it.</summary>
    public StepOutcome Advance(ReadOnlySpan<float> combinedLogits)
    {
        ThrowIfFinished();
        return Accept(Choose(combinedLogits));
    }

    /// <summary>
    /// Appends a token chosen for step <see cref="Step"/> (by <see cref="Advance"/>, or when replaying a
    /// history) and applies EOS, stop sequences and max tokens.
    /// </summary>
    public StepOutcome Accept(int tokenId)
    {
        ThrowIfFinished();
        if (tokenId < 0) throw new ArgumentOutOfRangeException(nameof(tokenId), tokenId, "Token ids are non-negative.");
        generated.Add(tokenId);
        processors.Accept(tokenId);

        if (Options.StopAtEos && eosTokenIds.Contains(tokenId))
            return new(tokenId, Flush(FinishReason.Eos), FinishReason.Eos);
        // vLLM's stop_token_ids: the generation stops and, like EOS, the token's text is not emitted.
        if (stopTokenIds.Contains(tokenId))
            return new(tokenId, Flush(FinishReason.Stop), FinishReason.Stop);

        text += detokenizer.Push(tokenId);
        if (maxStopLength > 0)
        {
            int stopAt = FindStop();
            if (stopAt >= 0)
            {
                string delta = text[emitted..stopAt];
                text = text[..stopAt];
                emitted = stopAt;
                FinishReason = FinishReason.Stop;
                return new(tokenId, delta, FinishReason.Stop);
            }
        }

        if (generated.Count >= Options.MaxNewTokens || generated.Count >= ContextRoom)
            return new(tokenId, Flush(FinishReason.Length), FinishReason.Length);

        int safe = SafeLength();
        string released = safe > emitted ? text[emitted..safe] : "";
        emitted = Math.Max(emitted, safe);
        return new(tokenId, released, FinishReason.None);
    }

    /// <summary>
    /// Ends the generation from outside (cancellation, context window full): releases the held-back text
    /// (it did not turn out to be a stop sequence) and records the reason.
    /// </summary>
    public string Finish(FinishReason reason)
    {
        if (reason == FinishReason.None) throw new ArgumentException("Finish needs a reason.", nameof(reason));
        ThrowIfFinished();
        return Flush(reason);
    }

    private string Flush(FinishReason reason)
    {
        text += detokenizer.Flush(); // an incomplete character at the very end shows as U+FFFD
        string delta = text.Length > emitted ? text[emitted..] : "";
        emitted = text.Length;
        FinishReason = reason;
        return delta;
    }

    private void ThrowIfFinished()
    {
        if (IsFinished) throw new InvalidOperationException($"The generation has finished ({FinishReason}).");
    }

    // Earliest stop sequence starting in the unreleased text (released text never holds a stop's beginning).
    private int FindStop()
    {
        int best = -1;
        foreach (string stop in Options.Stop)
        {
            int at = text.IndexOf(stop, emitted, StringComparison.Ordinal);
            if (at >= 0 && (best < 0 || at < best)) best = at;
        }
        return best;
    }

    // How much of `text` can be released: all but a tail that could be the start of a stop sequence.
    private int SafeLength()
    {
        int safe = text.Length;
        if (maxStopLength > 0)
        {
            int hold = 0;
            foreach (string stop in Options.Stop)
                for (int len = Math.Min(stop.Length - 1, safe - emitted); len > hold; len--)
                    if (string.CompareOrdinal(text, safe - len, stop, 0, len) == 0) { hold = len; break; }
            safe -= hold;
        }
        // Never split a surrogate pair.
        if (safe > emitted && safe < text.Length && char.IsHighSurrogate(text[safe - 1])) safe--;
        return Math.Max(safe, emitted);
    }
}
