using System.Collections.ObjectModel;

namespace ProxyOrleans.Inference.Decoding;

/// <summary>
/// The logits processors of one generation, run on the combined logits (base + alpha·Σ w·(expert − anti)) before the
/// sampler's warpers, in vLLM's order (its v1 sampler: logits processors, then penalties, then temperature, min-p,
/// top-k, top-p):
/// <list type="number">
/// <item>logit bias: logits[id] += bias (OpenAI's logit_bias);</item>
/// <item>repetition penalty p over every id seen in the prompt or the output: a positive logit is multiplied by 1/p, any
///   other by p (vLLM's apply_penalties; HF's RepetitionPenaltyLogitsProcessor divides positive logits by p);</item>
/// <item>frequency penalty: minus f × the id's count in the output (OpenAI's definition, as vLLM);</item>
/// <item>presence penalty: minus r once for each id present in the output.</item>
/// </list>
/// Greedy decoding (temperature 0) takes the argmax after these, as vLLM does. The prompt is the base model's prompt ids
/// (what <see cref="GenerationState"/> is given); the output counts grow with <see cref="Accept"/>, which
/// <see cref="GenerationState.Resume"/> replays for every token of a checkpoint, so a resumed or re-prefilled
/// generation penalises exactly what the first attempt did.
/// </summary>
public sealed class LogitsProcessors
{
    /// <summary>The empty bias map (the default of <see cref="SamplingOptions.LogitBias"/>).</summary>
    public static readonly IReadOnlyDictionary<int, float> NoBias = ReadOnlyDictionary<int, float>.Empty;

    /// <summary>OpenAI's bounds: a bias of ±100 bans or forces a token; penalties in [-2, 2].</summary>
    public const float MaxAbsBias = 100f, MaxAbsPenalty = 2f;

    private readonly SamplingOptions options;
    private readonly HashSet<int> promptIds;
    private readonly Dictionary<int, int> outputCounts = [];

    /// <param name="options">Validated sampling options (<see cref="Sampler.Validate"/>).</param>
    /// <param name="promptTokens">The base model's prompt ids (the repetition penalty covers them).</param>
    public LogitsProcessors(SamplingOptions options, ReadOnlySpan<int> promptTokens)
    {
        this.options = options;
        promptIds = [.. promptTokens.ToArray()];
        IsActive = options.LogitBias.Count > 0 || options.RepetitionPenalty != 1f || options.FrequencyPenalty != 0f || options.PresencePenalty != 0f;
    }

    /// <summary>False when every processor is at its "off" value: the logits are sampled as they are.</summary>
    public bool IsActive { get; }

    /// <summary>How often each id appears in the output so far.</summary>
    public IReadOnlyDictionary<int, int> OutputCounts => outputCounts;

    /// <summary>Counts a generated token (every accepted one, replayed ones included).</summary>
    public void Accept(int tokenId) => outputCounts[tokenId] = outputCounts.GetValueOrDefault(tokenId) + 1;

    /// <summary>Applies bias, then the penalties, in place. Each id's change depends on that id alone, so no order among ids matters.</summary>
    public void Apply(Span<float> logits)
    {
        foreach (var (id, bias) in options.LogitBias)
            if (id < logits.Length) logits[id] += bias;

        float p = options.RepetitionPenalty;
        if (p != 1f)
        {
            float inverse = 1f / p; // vLLM multiplies by the reciprocal: the same float as its torch code
            foreach (int id in promptIds) Repeat(logits, id, p, inverse);
            foreach (int id in outputCounts.Keys) if (!promptIds.Contains(id)) Repeat(logits, id, p, inverse);
        }

        float f = options.FrequencyPenalty, r = options.PresencePenalty;
        if (f != 0f || r != 0f)
            foreach (var (id, count) in outputCounts)
            {
                if (id >= logits.Length) continue;
                logits[id] -= f * count;
                logits[id] -= r;
            }
    }

    private static void Repeat(Span<float> logits, int id, float penalty, float inverse)
    {
        if (id >= logits.Length) return;
        float x = logits[id];
        logits[id] = x > 0 ? x * inverse : x * penalty;
    }

    /// <summary>Checks the processors' values (ranges; ids non-negative), naming the request field in the message and ParamName.</summary>
    public static void Validate(SamplingOptions options)
    {
        if (options.LogitBias is null) throw new ArgumentException("LogitBias must not be null (use LogitsProcessors.NoBias).", "logit_bias");
        foreach (var (id, bias) in options.LogitBias)
        {
            if (id < 0) throw new ArgumentException($"logit_bias: token id {id} is negative; token ids start at 0.", "logit_bias");
            if (!float.IsFinite(bias) || Math.Abs(bias) > MaxAbsBias)
                throw new ArgumentException($"logit_bias: the bias of token {id} must be a number in [-100, 100]; got {bias}.", "logit_bias");
        }
        if (!float.IsFinite(options.RepetitionPenalty) || options.RepetitionPenalty <= 0)
            throw new ArgumentException($"repetition_penalty must be a finite number > 0 (1 = off); got {options.RepetitionPenalty}.", "repetition_penalty");
        CheckPenalty(options.FrequencyPenalty, "frequency_penalty");
        CheckPenalty(options.PresencePenalty, "presence_penalty");
        if (!float.IsFinite(options.MinP) || options.MinP < 0 || options.MinP > 1)
            throw new ArgumentException($"min_p must be in [0, 1] (0 = off); got {options.MinP}.", "min_p");
        if (options.StopTokenIds is null) throw new ArgumentException("StopTokenIds must not be null (use []).", "stop_token_ids");
        foreach (int id in options.StopTokenIds)
            if (id < 0) throw new ArgumentException($"stop_token_ids: token id {id} is negative; token ids start at 0.", "stop_token_ids");
    }

    private static void CheckPenalty(float value, string field)
    {
        if (!float.IsFinite(value) || Math.Abs(value) > MaxAbsPenalty)
            throw new ArgumentException($"{field} must be a number in [-2, 2] (0 = off); got {value}.", field);
    }

    /// <summary>
    /// Checks that every id in logit_bias and stop_token_ids is in the vocabulary of <paramref name="vocabSize"/> ids
    /// (an unknown id would silently do nothing).
    /// </summary>
    public static void CheckTokenIds(SamplingOptions options, int vocabSize, string model = "the base model")
    {
        foreach (int id in options.LogitBias.Keys)
            if (id >= vocabSize)
                throw new ArgumentException($"logit_bias: token id {id} is not in the vocabulary of {model} ({vocabSize} tokens, ids 0 to {vocabSize - 1}). " +
                                            "POST /tokenize shows a text's ids.", "logit_bias");
        foreach (int id in options.StopTokenIds)
            if (id >= vocabSize)
                throw new ArgumentException($"stop_token_ids: token id {id} is not in the vocabulary of {model} ({vocabSize} tokens, ids 0 to {vocabSize - 1}). " +
                                            "POST /tokenize shows a text's ids.", "stop_token_ids");
    }
}
