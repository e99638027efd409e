namespace ProxyOrleans.Inference.Decoding;

/// <summary>One candidate token with its raw logit and its probability and log-probability under that model's softmax.</summary>
public readonly record struct TokenScore(int Id, float Logit, double Probability, double Logprob);

/// <summary>The top tokens of one model (or of the combination) at one step.</summary>
public sealed record ModelTopTokens(string Model, string Role, TokenScore[] Top);

/// <summary>
/// Per-step analysis, as the paper's figures use it: top tokens of base, each expert and anti-expert and of
/// the combination (before temperature/top-k/top-p), and the token chosen.
/// </summary>
public sealed record StepAnalysis(int Step, int ChosenToken, IReadOnlyList<ModelTopTokens> Models, TokenScore[] Combined)
{
    /// <summary>Softmax probability of one token (0 when it lies outside the vocabulary these logits cover).</summary>
    public static double Probability(ReadOnlySpan<float> logits, int token)
    {
        // As Sampler.Softmax for one entry: NaN and −∞ scores count as 0.
        if ((uint)token >= (uint)logits.Length || float.IsNaN(logits[token])) return 0;
        float max = float.NegativeInfinity;
        foreach (var x in logits) if (x > max) max = x;
        double sum = 0;
        foreach (var x in logits) if (!float.IsNaN(x)) sum += Math.Exp((double)x - max);
        return Math.Exp((double)logits[token] - max) / sum;
    }

    /// <summary>The <paramref name="k"/> highest logits, highest first (ties: lower id first), with softmax probabilities.</summary>
    public static TokenScore[] TopTokens(ReadOnlySpan<float> logits, int k)
    {
        if (k <= 0 || logits.IsEmpty) return [];
        k = Math.Min(k, logits.Length);
        double[] probabilities = new double[logits.Length];
        Sampler.Softmax(logits, probabilities);
        // A k-sized insertion list: k is small (≈5–20) next to the vocabulary.
        var top = new List<int>(k + 1);
        for (int j = 0; j < logits.Length; j++)
        {
            float x = logits[j];
            if (float.IsNaN(x) || (top.Count == k && !(x > logits[top[^1]]))) continue;
            int at = top.Count;
            while (at > 0 && x > logits[top[at - 1]]) at--;
            top.Insert(at, j);
            if (top.Count > k) top.RemoveAt(k);
        }
        double logSum = TokenLogprobs.LogSumExp(logits);
        var result = new TokenScore[top.Count];
        for (int i = 0; i < top.Count; i++) result[i] = new TokenScore(top[i], logits[top[i]], probabilities[top[i]], logits[top[i]] - logSum);
        return result;
    }
}
