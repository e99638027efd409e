namespace ProxyOrleans.Abstractions;

/// <summary>Why a generation stopped (None while it runs).</summary>
[GenerateSerializer]
public enum FinishKind { None = 0, Length = 1, Stop = 2, Eos = 3, Cancelled = 4, Error = 5 }

[GenerateSerializer, Immutable]
public sealed record UsageInfo(
    [property: Id(0)] int PromptTokens,
    [property: Id(1)] int CompletionTokens)
{
    public int TotalTokens => PromptTokens + CompletionTokens;
}

/// <summary>A token with its raw score and its probability under that model's softmax, for the top-tokens analysis option.</summary>
[GenerateSerializer, Immutable]
public sealed record TopToken([property: Id(0)] int TokenId, [property: Id(1)] string Text, [property: Id(2)] float Logit)
{
    /// <summary>Softmax of the model's (or the combination's) logits at this step, before temperature and top-p.</summary>
    [Id(3)] public float Probability { get; init; }
    /// <summary>The same, as a log-probability (computed from the logits: exact where the probability underflows).</summary>
    [Id(4)] public float Logprob { get; init; }
}

/// <summary>A token, its text (the token alone, decoded with special tokens) and its log-probability.</summary>
[GenerateSerializer, Immutable]
public sealed record LogprobSpec([property: Id(0)] int TokenId, [property: Id(1)] string Text, [property: Id(2)] float Logprob);

/// <summary>A token's log-probability under the combination and the combination's most likely tokens there (OpenAI's top_logprobs).</summary>
[GenerateSerializer, Immutable]
public sealed record TokenLogprobsSpec([property: Id(0)] LogprobSpec Chosen, [property: Id(1)] LogprobSpec[] Top)
{
    /// <summary>A token nothing scored (a prompt's first token: nothing comes before it): NaN and no alternatives.</summary>
    public static TokenLogprobsSpec Unscored(int tokenId, string text) => new(new LogprobSpec(tokenId, text, float.NaN), []);

    public bool IsScored => !float.IsNaN(Chosen.Logprob);
}

/// <summary>
/// One streamed step. <see cref="Text"/> is the new text this token completes (may be empty while a UTF-8
/// character or stop sequence is held back). The last event has <see cref="Finish"/> != None and
/// <see cref="Usage"/> set; it may carry no token (TokenId = -1) when the stop came from a stop sequence or EOS.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record TokenEvent
{
    /// <summary>Step index (0-based, counts generated tokens).</summary>
    [Id(0)] public int Step { get; init; }
    [Id(1)] public int TokenId { get; init; } = -1;
    [Id(2)] public string Text { get; init; } = "";
    [Id(3)] public FinishKind Finish { get; init; }
    [Id(4)] public UsageInfo? Usage { get; init; }
    /// <summary>Combined fp32 logits of this step as little-endian bytes, when requested.</summary>
    [Id(5)] public byte[]? Logits { get; init; }
    /// <summary>Per model name (and "combined"): top tokens of this step, when requested.</summary>
    [Id(6)] public Dictionary<string, TopToken[]>? TopTokens { get; init; }
    /// <summary>Error message when <see cref="Finish"/> is Error.</summary>
    [Id(7)] public string? Error { get; init; }
    /// <summary>Seed in use (on every event), so a resumed attempt draws the same numbers.</summary>
    [Id(8)] public ulong Seed { get; init; }
    /// <summary>Timing and traffic figures of the whole generation (final event only).</summary>
    [Id(9)] public GenerationStats? Stats { get; init; }
    /// <summary>With <see cref="TopTokens"/>: per model name (and "combined"), the probability of the token chosen at this step.</summary>
    [Id(10)] public Dictionary<string, float>? ChosenProbabilities { get; init; }
    /// <summary>With <see cref="GenerationRequest.Logprobs"/>: this step's token scored by the combination, and the top alternatives.</summary>
    [Id(11)] public TokenLogprobsSpec? Logprobs { get; init; }
    /// <summary>
    /// With <see cref="GenerationRequest.PromptLogprobs"/>, on the first event only: per prompt token (as the base tokenized
    /// it), its log-probability; the first token has no score (<see cref="TokenLogprobsSpec.Unscored"/>: NaN, no alternatives).
    /// </summary>
    [Id(12)] public TokenLogprobsSpec[]? PromptLogprobs { get; init; }
    /// <summary>With <see cref="TopTokens"/>: per model name (and "combined"), the log-probability of the token chosen at this step.</summary>
    [Id(13)] public Dictionary<string, float>? ChosenLogprobs { get; init; }
}

/// <summary>Where a generation's time went, per step on average (final event only).</summary>
[GenerateSerializer, Immutable]
public sealed record GenerationStats
{
    [Id(0)] public int Steps { get; init; }
    /// <summary>Prefill (all models at once, wall) in ms.</summary>
    [Id(1)] public double PrefillMs { get; init; }
    /// <summary>Mean wall time of one decode step at the coordinator (fan-out + combine + sample + bookkeeping).</summary>
    [Id(2)] public double StepMs { get; init; }
    /// <summary>Mean of the slowest model's compute time per step (reported by the model grains).</summary>
    [Id(3)] public double ModelMs { get; init; }
    /// <summary>Mean fan-out wall time per step (calls out until the last result is in).</summary>
    [Id(4)] public double FanOutMs { get; init; }
    /// <summary>Mean combination time per step (decode bytes, weighted differences, base + alpha·Σ).</summary>
    [Id(5)] public double CombineMs { get; init; }
    /// <summary>Mean sampling + stop/text bookkeeping time per step.</summary>
    [Id(6)] public double SampleMs { get; init; }
    /// <summary>Mean logits bytes per step that crossed the wire to the coordinator (local models' logits excluded).</summary>
    [Id(7)] public double BytesPerStep { get; init; }
    /// <summary>Sessions re-created on another replica.</summary>
    [Id(8)] public int Failovers { get; init; }
    /// <summary>The silo that ran the coordinator.</summary>
    [Id(9)] public string CoordinatorSilo { get; init; } = "";
    /// <summary>How each model was reached, e.g. "base-large:local", "tuned-small~base-small:pair@...".</summary>
    [Id(10)] public string Layout { get; init; } = "";
    /// <summary>Mean time per step the coordinator waited for the caller to take the streamed token (overlaps the fan-out).</summary>
    [Id(11)] public double StreamMs { get; init; }
    /// <summary>Mean per step, for the model call that took longest: its time inside the model's silo (compute included).</summary>
    [Id(12)] public double ServerMs { get; init; }
}

/// <summary>Published on the Orleans stream <see cref="StreamNames.GenerationEvents"/> for observers (monitors).</summary>
[GenerateSerializer, Immutable]
public sealed record GenerationEvent
{
    [Id(0)] public required string RequestId { get; init; }
    [Id(1)] public required string TenantId { get; init; }
    [Id(2)] public required GenerationEventKind Kind { get; init; }
    [Id(3)] public string Combination { get; init; } = "";
    [Id(4)] public int Step { get; init; }
    [Id(5)] public int TokenId { get; init; } = -1;
    [Id(6)] public string Text { get; init; } = "";
    [Id(7)] public FinishKind Finish { get; init; }
    [Id(8)] public DateTimeOffset Time { get; init; } = DateTimeOffset.UtcNow;
    /// <summary>Mean step time so far in milliseconds (on Token and Finished events).</summary>
    [Id(9)] public double MeanStepMs { get; init; }
    [Id(10)] public string? Detail { get; init; }
}

[GenerateSerializer]
public enum GenerationEventKind { Started = 0, Token = 1, Finished = 2, Failover = 3 }

public static class StreamNames
{
    /// <summary>Stream provider name every silo and client registers (memory streams by default).</summary>
    public const string Provider = "proxyorleans";
    /// <summary>Namespace of the per-tenant generation event streams; stream key = tenant id, or <see cref="AllTenants"/>.</summary>
    public const string GenerationEvents = "generations";
    /// <summary>Key of the stream that carries every tenant's events (for operators' monitors).</summary>
    public const string AllTenants = "*";
}
