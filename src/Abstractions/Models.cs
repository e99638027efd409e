namespace ProxyOrleans.Abstractions;

/// <summary>Metadata of a hosted model, as the model grain reports it.</summary>
[GenerateSerializer, Immutable]
public sealed record ModelInfo(
    [property: Id(0)] string Name,
    [property: Id(1)] int VocabSize,
    [property: Id(2)] int MaxSequenceLength,
    [property: Id(3)] long KvBytesPerToken,
    [property: Id(4)] bool HasChatTemplate,
    [property: Id(5)] int? EosTokenId);

/// <summary>One model and the silos that host it.</summary>
[GenerateSerializer, Immutable]
public sealed record HostedModel([property: Id(0)] string Name, [property: Id(1)] string[] Silos);

/// <summary>A named combination from configuration and whether all its models are hosted now.</summary>
[GenerateSerializer, Immutable]
public sealed record CombinationInfo(
    [property: Id(0)] string Name,
    [property: Id(1)] CombinationSpec Spec,
    [property: Id(2)] bool Ready,
    [property: Id(3)] string[] MissingModels);

[GenerateSerializer, Immutable]
public sealed record ClusterModels(
    [property: Id(0)] HostedModel[] Models,
    [property: Id(1)] CombinationInfo[] Combinations)
{
    /// <summary>Ready when every configured combination's models are hosted (and at least one model is).</summary>
    public bool Ready => Models.Length > 0 && Combinations.All(c => c.Ready);
}

/// <summary>Opens a session on a model: the prompt (as text, messages or token ids) and tokens to prefill after it.</summary>
[GenerateSerializer, Immutable]
public sealed record OpenSessionRequest
{
    [Id(0)] public required string SessionId { get; init; }
    [Id(1)] public string? Prompt { get; init; }
    [Id(2)] public ChatMessageSpec[]? Messages { get; init; }
    /// <summary>Render the prompt/messages through this model's chat template (experts).</summary>
    [Id(3)] public bool ApplyChatTemplate { get; init; }
    /// <summary>Tokens generated so far (prefilled after the prompt: failover and resume).</summary>
    [Id(4)] public int[] Generated { get; init; } = [];
    [Id(5)] public LogitsPrecision Precision { get; init; }
    /// <summary>Capacity to reserve (prompt + generated + max new tokens); 0 = model maximum.</summary>
    [Id(6)] public int MaxNewTokens { get; init; }
    /// <summary>Owner, for logs and for the pair grain's key check.</summary>
    [Id(7)] public string TenantId { get; init; } = "default";
    /// <summary>Pair grains: the pair's weight w_i (the difference sent is w_i·(expert − antiExpert)).</summary>
    [Id(8)] public float Weight { get; init; } = 1f;
    /// <summary>Pair grains: the base's vocabulary size (longer expert vocabularies are truncated to it); 0 = own.</summary>
    [Id(9)] public int OutputVocab { get; init; }
    /// <summary>How this model sees the prompt when it is a base or anti-expert (see <see cref="CombinationSpec.AnswerCue"/>).</summary>
    [Id(10)] public string? AnswerCue { get; init; }
    /// <summary>Text after this model's chat template when it is an expert (see <see cref="CombinationSpec.ExpertResponsePrefix"/>).</summary>
    [Id(11)] public string? ExpertResponsePrefix { get; init; }
    /// <summary>
    /// The request every attempt of a generation shares (<see cref="GenerationKeys.AttemptOf"/>) and this attempt's
    /// number: opening attempt n frees the sessions of earlier attempts in the same model (their coordinator died and
    /// will never close them), so KV accounting returns to its baseline after a failover instead of after the idle timeout.
    /// </summary>
    [Id(12)] public string? Generation { get; init; }
    [Id(13)] public int Attempt { get; init; }
    /// <summary>Also return the logits at every prompt position (<see cref="StepResult.PromptLogits"/>), to score the prompt (echo).</summary>
    [Id(14)] public bool ScorePrompt { get; init; }
    /// <summary>The prompt as token ids of the base model's vocabulary, instead of <see cref="Prompt"/> (see <see cref="GenerationRequest.PromptTokenIds"/>).</summary>
    [Id(15)] public int[]? PromptTokenIds { get; init; }
    /// <summary>
    /// The silo of the coordinator that opens the session: when the cluster declares that silo dead, the session is freed
    /// at once (its coordinator will never step or close it, and with its caller gone no resume frees it either).
    /// </summary>
    [Id(16)] public string? CoordinatorSilo { get; init; }
}

/// <summary>Result of an open or a step: the next-token logits (fp32 or fp16 little-endian bytes).</summary>
[GenerateSerializer, Immutable]
public sealed record StepResult
{
    /// <summary>Step index whose logits these are (the index of the token they predict).</summary>
    [Id(0)] public int Step { get; init; }
    [Id(1)] public required Immutable<byte[]> Logits { get; init; }
    [Id(2)] public LogitsPrecision Precision { get; init; }
    /// <summary>Prompt length in tokens as this model tokenized it (Open only).</summary>
    [Id(3)] public int PromptTokens { get; init; }
    /// <summary>Prompt ids (Open only; the coordinator detokenizes with the base model's ids).</summary>
    [Id(4)] public int[]? PromptIds { get; init; }
    /// <summary>Time the model spent computing these logits (ms), for the benchmark's breakdown.</summary>
    [Id(5)] public double ModelMs { get; init; }
    /// <summary>Open only: how many tokens still fit after the prompt in this model's context window.</summary>
    [Id(6)] public int ContextRoom { get; init; } = int.MaxValue;
    /// <summary>Open only: the vocabulary of each model behind this result (one; two for an expert pair).</summary>
    [Id(7)] public VocabularyId[]? Vocabularies { get; init; }
    /// <summary>Time from the step call's arrival at the model grain to its answer (ms): compute plus the silo's own
    /// overhead (queueing for the model's worker, thread hops, encoding); the rest of a call's wall time is the wire.</summary>
    [Id(8)] public double ServerMs { get; init; }
    /// <summary>
    /// Open with <see cref="OpenSessionRequest.ScorePrompt"/> only: the logits after each prompt token but the last
    /// (that one is <see cref="Logits"/>), row after row, in <see cref="Precision"/>; a pair sends w·(expert − anti) per row.
    /// </summary>
    [Id(9)] public Immutable<byte[]>? PromptLogits { get; init; }
}

/// <summary>
/// A model's vocabulary as a coordinator compares it: the SHA-256 fingerprint of its tokenizer's tokens
/// (VocabularyCheck.Fingerprint: tokens, BOS/EOS, probe encodings) and how many logits the model returns.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record VocabularyId([property: Id(0)] string Model, [property: Id(1)] string Fingerprint, [property: Id(2)] int Logits);

/// <summary>
/// POST /tokenize as a model grain runs it (vLLM's shapes): a prompt as /v1/completions tokenizes it, or chat messages
/// rendered through the model's chat template as an expert sees them.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record TokenizeRequest
{
    [Id(0)] public string? Prompt { get; init; }
    [Id(1)] public ChatMessageSpec[]? Messages { get; init; }
    /// <summary>Add the BOS token (vLLM's default: true for a prompt, false for messages, whose template writes its own).</summary>
    [Id(2)] public bool AddSpecialTokens { get; init; } = true;
    /// <summary>Messages: end with the template's assistant header, as a chat request is prefilled (default true).</summary>
    [Id(3)] public bool AddGenerationPrompt { get; init; } = true;
    /// <summary>Also return each id's vocabulary string ("▁Hello", "Ġworld").</summary>
    [Id(4)] public bool ReturnTokenStrings { get; init; }
}

/// <summary>A model's ids for a <see cref="TokenizeRequest"/> and its context length.</summary>
[GenerateSerializer, Immutable]
public sealed record TokenizeResult(
    [property: Id(0)] int[] Tokens,
    [property: Id(1)] int MaxModelLength,
    [property: Id(2)] string[]? TokenStrings = null);

/// <summary>Tokenizer files of a model (a few hundred KB), so a coordinator on any silo can detokenize.</summary>
[GenerateSerializer, Immutable]
public sealed record TokenizerFiles([property: Id(0)] Dictionary<string, byte[]> Files);
