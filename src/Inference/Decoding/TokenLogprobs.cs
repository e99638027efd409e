namespace ProxyOrleans.Inference.Decoding;

/// <summary>The combined logits after prompt token <paramref name="position"/> (valid until the next call).</summary>
public delegate ReadOnlySpan<float> CombinedLogitsAt(int position);

/// <summary>One candidate token and its log-probability.</summary>
public readonly record struct LogprobCandidate(int TokenId, float Logprob);

/// <summary>
/// A token's log-probability under one distribution and the most likely tokens of that distribution (OpenAI's
/// logprobs / top_logprobs). The distribution is the log-softmax of the logits given, with nothing applied: for a
/// generated token, the combination's logits before temperature, top-k and top-p (vLLM's default "raw" logprobs; see
/// docs/gateway.md), so a token's score does not depend on how it was sampled.
/// </summary>
public sealed record TokenLogprobs(int TokenId, float Logprob, LogprobCandidate[] Top)
{
    /// <summary>The most top alternatives any request may ask for (OpenAI's top_logprobs limit).</summary>
    public const int MaxTop = 20;

    /// <summary>
    /// log softmax(logits)[token], and the <paramref name="top"/> most likely tokens (highest first, ties: lower id
    /// first). Computed in double: max, then log Σ exp(x − max); NaN logits count as −∞. A token outside the logits
    /// (padding rows cut off) gets −∞.
    /// </summary>
    public static TokenLogprobs Of(ReadOnlySpan<float> logits, int token, int top)
    {
        if (logits.IsEmpty) throw new ArgumentException("No logits to score.", nameof(logits));
        ArgumentOutOfRangeException.ThrowIfNegative(top);
        double logSum = LogSumExp(logits);
        var candidates = StepAnalysis.TopTokens(logits, top);
        var result = new LogprobCandidate[candidates.Length];
        for (int i = 0; i < result.Length; i++) result[i] = new(candidates[i].Id, LogprobOf(logits, candidates[i].Id, logSum));
        return new TokenLogprobs(token, LogprobOf(logits, token, logSum), result);
    }

    /// <summary>log Σ_j exp(logits[j]) in double (−∞ when every logit is −∞ or NaN).</summary>
    public static double LogSumExp(ReadOnlySpan<float> logits)
    {
        float max = float.NegativeInfinity;
        foreach (float x in logits) if (x > max) max = x;
        if (max == float.NegativeInfinity) return double.NegativeInfinity;
        double sum = 0;
        foreach (float x in logits) if (!float.IsNaN(x)) sum += Math.Exp((double)x - max);
        return max + Math.Log(sum);
    }

    private static float LogprobOf(ReadOnlySpan<float> logits, int token, double logSum) =>
        (uint)token >= (uint)logits.Length || float.IsNaN(logits[token]) ? float.NegativeInfinity : (float)(logits[token] - logSum);

    /// <summary>
    /// Log-probabilities of a prompt's tokens under the combination (echo): position t's combined logits score
    /// token t+1, the first token has none (null). <paramref name="combineAt"/> gives the combined logits after prompt
    /// token t (the same <see cref="ProxyStep.Combine"/> a generation step runs, so the two paths agree bit for bit);
    /// <paramref name="candidates"/> cuts them to the tokenizer's vocabulary as sampling does.
    /// </summary>
    public static TokenLogprobs?[] ScorePrompt(IReadOnlyList<int> promptIds, CombinedLogitsAt combineAt, int candidates, int top)
    {
        var scored = new TokenLogprobs?[promptIds.Count];
        for (int t = 0; t + 1 < promptIds.Count; t++)
        {
            var combined = combineAt(t);
            scored[t + 1] = Of(combined[..Math.Min(combined.Length, candidates)], promptIds[t + 1], top);
        }
        return scored;
    }
}
