namespace ProxyOrleans.Abstractions;

/// <summary>One expert/anti-expert pair of a combination and its weight w_i.</summary>
[GenerateSerializer, Immutable]
public sealed record ExpertSpec(
    [property: Id(0)] string Expert,
    [property: Id(1)] string AntiExpert,
    [property: Id(2)] float Weight = 1f);

/// <summary>
/// A proxy-tuned combination on the wire: logits = base + alpha * Σ_i w_i (expert_i − antiExpert_i), and how its
/// models see the prompt. No experts (or alpha 0 with none) means plain decoding of the base model.
/// </summary>
/// <param name="AnswerCue">
/// How the base and the anti-experts see the prompt: "{prompt}" is replaced by the prompt text (e.g.
/// "Question: {prompt}\nAnswer:"); it must contain "{prompt}" exactly once. Null: the prompt as it is.
/// </param>
/// <param name="ExpertResponsePrefix">Text after the expert's chat template (e.g. "Answer:"). Null: nothing.</param>
/// <param name="BaseChatTemplate">
/// The base sees the prompt as an expert does (its chat template and the response prefix): for a tuned model served
/// alone, such as a directly tuned model compared with proxy-tuning. Off for a proxy-tuned (untuned) base.
/// </param>
[GenerateSerializer, Immutable]
public sealed record CombinationSpec(
    [property: Id(0)] string Base,
    [property: Id(1)] ExpertSpec[] Experts,
    [property: Id(2)] float Alpha = 1f,
    [property: Id(3)] string? AnswerCue = null,
    [property: Id(4)] string? ExpertResponsePrefix = null,
    [property: Id(5)] bool BaseChatTemplate = false)
{
    public static CombinationSpec BaseOnly(string baseModel) => new(baseModel, [], 0f);

    /// <summary>This combination's base alone, asked as the combination asks it (the same answer cue): the zero-shot baseline.</summary>
    public CombinationSpec BaseAlone() => BaseOnly(Base) with { AnswerCue = AnswerCue };

    /// <summary>The placeholder an <see cref="AnswerCue"/> holds exactly once.</summary>
    public const string PromptPlaceholder = AnswerCueRule.Placeholder;

    /// <summary>Why <paramref name="answerCue"/> cannot be used (null: it can), in words a caller can act on (src/Shared/AnswerCueRule.cs).</summary>
    public static string? AnswerCueProblem(string? answerCue) => AnswerCueRule.Problem(answerCue);

    /// <summary>Every model the combination needs, base first, without duplicates.</summary>
    public IReadOnlyList<string> Models =>
        new[] { Base }.Concat(Experts.SelectMany(e => new[] { e.Expert, e.AntiExpert })).Distinct().ToArray();
}

[GenerateSerializer, Immutable]
public sealed record ChatMessageSpec([property: Id(0)] string Role, [property: Id(1)] string Content);

/// <summary>
/// Sampling and stopping on the wire. The grains turn it into the Inference library's SamplingOptions in one place
/// (src/Grains/InferenceMapping.cs): a new field goes here, in the gateway's RequestParser and in that mapping.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record SamplingSpec
{
    /// <summary>0 = greedy.</summary>
    [Id(0)] public float Temperature { get; init; }
    /// <summary>0 disables top-k.</summary>
    [Id(1)] public int TopK { get; init; }
    /// <summary>1 disables top-p.</summary>
    [Id(2)] public float TopP { get; init; } = 1f;
    /// <summary>With a seed, a sampled run repeats exactly (randomness depends only on seed and step).</summary>
    [Id(3)] public ulong? Seed { get; init; }
    [Id(4)] public int MaxNewTokens { get; init; } = 64;
    [Id(5)] public string[] Stop { get; init; } = [];
    [Id(6)] public bool StopAtEos { get; init; } = true;

    // Logits processors, applied to the combined logits in vLLM's order: logit_bias → repetition, frequency and
    // presence penalties → temperature → min_p → top_k → top_p (docs/decoding.md). Each default changes nothing.
    // Ids from 20 leave room for other fields without renumbering.
    /// <summary>Token id → bias in [-100, 100] added to its logit (OpenAI's logit_bias). Null or empty: none.</summary>
    [Id(20)] public Dictionary<int, float>? LogitBias { get; init; }
    /// <summary>Repetition penalty over prompt and output tokens (vLLM's; &gt; 0, 1 = off).</summary>
    [Id(21)] public float RepetitionPenalty { get; init; } = 1f;
    /// <summary>OpenAI frequency penalty in [-2, 2] (0 = off).</summary>
    [Id(22)] public float FrequencyPenalty { get; init; }
    /// <summary>OpenAI presence penalty in [-2, 2] (0 = off).</summary>
    [Id(23)] public float PresencePenalty { get; init; }
    /// <summary>Min-p in [0, 1] (0 = off).</summary>
    [Id(24)] public float MinP { get; init; }
    /// <summary>Token ids that stop the generation (vLLM's stop_token_ids); their text is not emitted.</summary>
    [Id(25)] public int[] StopTokenIds { get; init; } = [];
}

/// <summary>How logits travel between silos.</summary>
[GenerateSerializer]
public enum LogitsPrecision
{
    /// <summary>fp32 bytes: bit-exact with the single-process path.</summary>
    Float32 = 0,
    /// <summary>fp16 bytes: half the bytes, not bit-exact (see docs/distributed.md for the measured effect).</summary>
    Float16 = 1,
}

/// <summary>
/// One generation request, from the HTTP gateway (RequestParser builds it), the CLI or a test to the coordinator
/// grain. Give one of <see cref="Prompt"/>, <see cref="Messages"/> or <see cref="PromptTokenIds"/>.
/// The expert models see the chat template (when they have one and <see cref="ExpertChatTemplate"/> is set) and the
/// combination's <see cref="CombinationSpec.ExpertResponsePrefix"/>; the base and anti-experts see the plain prompt
/// inside the combination's <see cref="CombinationSpec.AnswerCue"/>, as in the paper.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record GenerationRequest
{
    [Id(0)] public required CombinationSpec Combination { get; init; }
    [Id(1)] public string? Prompt { get; init; }
    [Id(2)] public ChatMessageSpec[]? Messages { get; init; }
    [Id(3)] public SamplingSpec Sampling { get; init; } = new();
    /// <summary>Owner of the request; only the same tenant may cancel or observe it.</summary>
    [Id(4)] public string TenantId { get; init; } = "default";
    [Id(5)] public bool ExpertChatTemplate { get; init; } = true;
    [Id(6)] public LogitsPrecision Precision { get; init; } = LogitsPrecision.Float32;
    /// <summary>Ship only w·(expert − anti-expert) from a silo hosting both models of a pair (exact; default on).</summary>
    [Id(7)] public bool CoHostedPairs { get; init; } = true;
    /// <summary>Return each step's combined fp32 logits in <see cref="TokenEvent.Logits"/> (for analysis and tests).</summary>
    [Id(8)] public bool ReturnLogits { get; init; }
    /// <summary>
    /// Tokens already generated by an earlier attempt of this request (resume after a coordinator's silo died):
    /// the coordinator prefills them and continues at step ResumeTokens.Length, yielding the identical output.
    /// </summary>
    [Id(9)] public int[] ResumeTokens { get; init; } = [];
    /// <summary>Top tokens per step of each model and of the combination (0 = off).</summary>
    [Id(10)] public int TopTokens { get; init; }

    // Log-probabilities (OpenAI's logprobs, top_logprobs and echo), scored by the combination's logits before
    // temperature, top-k and top-p (docs/gateway.md): TokenEvent.Logprobs and TokenEvent.PromptLogprobs.
    /// <summary>Per generated token: its log-probability and this many top alternatives (null: off; 0..20).</summary>
    [Id(11)] public int? Logprobs { get; init; }
    /// <summary>
    /// Score the prompt (echo): per prompt token, its log-probability and this many top alternatives (null: off; 0..20).
    /// Every model then reads the prompt as sent (no chat template, answer cue or response prefix) so that all score the
    /// same tokens. With <see cref="SamplingSpec.MaxNewTokens"/> 0 nothing is generated.
    /// </summary>
    [Id(12)] public int? PromptLogprobs { get; init; }
    /// <summary>
    /// The prompt as token ids of the base model's vocabulary, instead of <see cref="Prompt"/> (completions'
    /// <c>"prompt": [ids]</c>). Read as given by the base and anti-experts (no answer cue can apply); an expert with a
    /// chat template reads them decoded, inside its template (ProxyPrompt.TokenIds in the Inference library).
    /// </summary>
    [Id(13)] public int[]? PromptTokenIds { get; init; }
    /// Consumer lease in seconds (0: none). With a lease the caller renews it (<see cref="IGenerationGrain.RenewLease"/>;
    /// <see cref="GenerationClient.StreamAsync"/> does, every third of it) and each token it pulls renews it too; when the
    /// lease lapses the coordinator takes its caller for dead (a gateway killed mid-stream), cancels the generation and
    /// frees every model session's KV at once, instead of when Orleans drops the unread enumeration (about a minute).
    /// </summary>
    [Id(14)] public double ConsumerLeaseSeconds { get; init; }
}
