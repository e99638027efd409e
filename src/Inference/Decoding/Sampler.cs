using System.Security.Cryptography;

namespace ProxyOrleans.Inference.Decoding;

/// <summary>
/// Picks the next token from combined logits (after <see cref="LogitsProcessors"/>), in vLLM's order, which for the
/// proxy-tuning reference's warpers (HF generate's) is the same: temperature, then min-p, then top-k, then top-p, then
/// sampling from the softmax. Temperature 0 is greedy: argmax, lowest id on ties (as torch.argmax), min-p/top-k/top-p ignored.
/// Randomness comes from <see cref="CounterRng"/> keyed by (seed, step), so step k of a generation draws the
/// same number wherever and whenever it runs: a generation resumed from its token history repeats exactly.
/// </summary>
public static class Sampler
{
    /// <summary>Checks options once, up front, with messages naming the field.</summary>
    public static void Validate(SamplingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!float.IsFinite(options.Temperature) || options.Temperature < 0)
            throw new ArgumentException($"Temperature must be a finite number >= 0 (0 = greedy); got {options.Temperature}.", nameof(options));
        if (options.TopK < 0)
            throw new ArgumentException($"TopK must be >= 0 (0 = off); got {options.TopK}.", nameof(options));
        if (!float.IsFinite(options.TopP) || options.TopP <= 0 || options.TopP > 1)
            throw new ArgumentException($"TopP must be in (0, 1] (1 = off); got {options.TopP}.", nameof(options));
        if (options.MaxNewTokens < 0)
            throw new ArgumentException($"MaxNewTokens must be >= 0 (0: score the prompt only, generate nothing); got {options.MaxNewTokens}.", nameof(options));
        if (options.Stop is null || options.Stop.Any(string.IsNullOrEmpty))
            throw new ArgumentException("Stop sequences must be non-empty strings.", nameof(options));
        LogitsProcessors.Validate(options);
    }

    /// <summary>A fresh random seed, for requests that did not give one (report it so the run can be repeated).</summary>
    public static ulong NewSeed() => BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));

    /// <summary>The token for step <paramref name="step"/> of a generation with <paramref name="seed"/>.</summary>
    public static int Sample(ReadOnlySpan<float> logits, SamplingOptions options, ulong seed, long step)
    {
        if (logits.IsEmpty) throw new ArgumentException("No logits to sample from.", nameof(logits));
        if (options.Temperature == 0) return ArgMax(logits);
        float[] scores = new float[logits.Length];
        Warp(logits, options, scores);
        return SampleFromScores(scores, CounterRng.NextDouble(seed, step));
    }

    /// <summary>Index of the largest logit; the lowest index among equal maxima. NaN never wins.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = -1;
        float bestValue = float.NegativeInfinity;
        for (int j = 0; j < logits.Length; j++)
        {
            float x = logits[j];
            if (x > bestValue || (best < 0 && !float.IsNaN(x))) { best = j; bestValue = x; }
        }
        if (best < 0) throw new InvalidOperationException("All logits are NaN: the models produced no usable scores.");
        return best;
    }

    /// <summary>
    /// Applies temperature, min-p, top-k and top-p (in that order) into <paramref name="scores"/>: kept tokens hold
    /// logit / temperature, removed ones −∞. Min-p keeps the tokens whose probability is at least min_p times the
    /// largest (vLLM's MinPLogitsProcessor), computed as exp(score − max) ≥ min_p in double. Top-k keeps every token whose score is at least the k-th largest
    /// (ties at the boundary are all kept, as HF's TopKLogitsWarper does). Top-p keeps the smallest
    /// highest-first set whose probability reaches top_p, plus any token tied with the last one kept.
    /// </summary>
    public static void Warp(ReadOnlySpan<float> logits, SamplingOptions options, Span<float> scores)
    {
        if (scores.Length != logits.Length) throw new ArgumentException("Scores must be as long as the logits.", nameof(scores));
        float t = options.Temperature > 0 ? options.Temperature : 1f;
        bool overflowed = false;
        for (int j = 0; j < logits.Length; j++)
        {
            scores[j] = t == 1f ? logits[j] : logits[j] / t;
            if (float.IsInfinity(scores[j]) && float.IsFinite(logits[j])) overflowed = true;
        }
        for (int j = 0; j < scores.Length; j++) if (float.IsNaN(scores[j])) scores[j] = float.NegativeInfinity;
        // A temperature so small that logit / t overflows (1e-40) would leave ±∞ scores and a NaN softmax (an empty
        // text came back). Its limit as t → 0 is the largest logit(s) alone: keep them, at equal scores.
        if (overflowed) KeepOnlyTheLargest(logits, scores);

        if (options.MinP > 0f)
        {
            float max = float.NegativeInfinity;
            foreach (float x in scores) if (x > max) max = x;
            for (int j = 0; j < scores.Length; j++)
                if (Math.Exp((double)scores[j] - max) < options.MinP) scores[j] = float.NegativeInfinity;
        }

        if (options.TopK > 0 && options.TopK < scores.Length)
        {
            var (values, _) = Survivors(scores, withProbabilities: false);
            float kth = Threshold(values, null, options.TopK);
            for (int j = 0; j < scores.Length; j++) if (scores[j] < kth) scores[j] = float.NegativeInfinity;
        }

        if (options.TopP < 1f)
        {
            var (values, probabilities) = Survivors(scores, withProbabilities: true);
            if (values.Length == 0) return;
            float last = Threshold(values, probabilities, options.TopP);
            for (int j = 0; j < scores.Length; j++) if (scores[j] < last) scores[j] = float.NegativeInfinity;
        }
    }

    private static void KeepOnlyTheLargest(ReadOnlySpan<float> logits, Span<float> scores)
    {
        float max = float.NegativeInfinity;
        foreach (float x in logits) if (x > max) max = x;
        for (int j = 0; j < scores.Length; j++) scores[j] = logits[j] == max ? 0f : float.NegativeInfinity;
    }

    // The finite scores, and (optionally) their softmax probabilities in double.
    private static (float[] Values, double[]? Probabilities) Survivors(ReadOnlySpan<float> scores, bool withProbabilities)
    {
        int count = 0;
        float max = float.NegativeInfinity;
        foreach (float x in scores) if (x != float.NegativeInfinity) { count++; if (x > max) max = x; }
        var values = new float[count];
        for (int j = 0, c = 0; j < scores.Length; j++) if (scores[j] != float.NegativeInfinity) values[c++] = scores[j];
        if (!withProbabilities) return (values, null);
        var p = new double[count];
        double total = 0;
        for (int c = 0; c < count; c++) total += p[c] = Math.Exp((double)values[c] - max);
        for (int c = 0; c < count; c++) p[c] /= total;
        return (values, p);
    }

    /// <summary>
    /// The score v of the last token kept when tokens are taken highest first until their weight reaches
    /// <paramref name="target"/>: W(score &gt; v) &lt; target ≤ W(score ≥ v), W = count (top-k, weights null) or
    /// probability (top-p). Keeping every score ≥ v keeps ties with the last token. Expected linear time
    /// (quickselect on weight) instead of sorting the vocabulary. If the total weight never reaches the
    /// target (rounding), the lowest score: everything is kept.
    /// </summary>
    private static float Threshold(float[] values, double[]? weights, double target)
    {
        float[] v = values;
        double[]? w = weights;
        int n = v.Length;
        while (true)
        {
            float pivot = MedianOfThree(v[0], v[n / 2], v[n - 1]);
            double high = 0, equal = 0;
            int highCount = 0, lowCount = 0;
            for (int c = 0; c < n; c++)
            {
                double wc = w?[c] ?? 1;
                if (v[c] > pivot) { high += wc; highCount++; }
                else if (v[c] == pivot) equal += wc;
                else lowCount++;
            }
            if (high >= target)
            {
                (v, w) = Keep(v, w, n, highCount, x => x > pivot);
                n = highCount;
            }
            else if (high + equal >= target) return pivot;
            else if (lowCount == 0) return Min(v, n);
            else
            {
                target -= high + equal;
                (v, w) = Keep(v, w, n, lowCount, x => x < pivot);
                n = lowCount;
            }
        }
    }

    private static (float[], double[]?) Keep(float[] v, double[]? w, int n, int count, Func<float, bool> keep)
    {
        var nv = new float[count];
        var nw = w is null ? null : new double[count];
        for (int c = 0, k = 0; c < n; c++)
            if (keep(v[c])) { nv[k] = v[c]; if (nw is not null) nw[k] = w![c]; k++; }
        return (nv, nw);
    }

    private static float Min(float[] v, int n)
    {
        float m = v[0];
        for (int c = 1; c < n; c++) if (v[c] < m) m = v[c];
        return m;
    }

    private static float MedianOfThree(float a, float b, float c) =>
        a > b ? (b > c ? b : a > c ? c : a) : (a > c ? a : b > c ? c : b);

    /// <summary>
    /// Inverse-CDF draw from softmax(scores) in id order with a uniform <paramref name="u"/> in [0, 1):
    /// the first id whose cumulative probability exceeds u. Probabilities are computed in double.
    /// </summary>
    public static int SampleFromScores(ReadOnlySpan<float> scores, double u)
    {
        float max = float.NegativeInfinity;
        foreach (float s in scores) if (s > max) max = s;
        if (max == float.NegativeInfinity) throw new InvalidOperationException("Every token was filtered out; nothing to sample.");
        double[] weights = new double[scores.Length];
        double total = 0;
        for (int j = 0; j < scores.Length; j++)
            if (scores[j] != float.NegativeInfinity) total += weights[j] = Math.Exp((double)scores[j] - max);
        double target = u * total, cumulative = 0;
        int last = -1;
        for (int j = 0; j < scores.Length; j++)
        {
            if (weights[j] == 0) continue;
            cumulative += weights[j];
            last = j;
            if (cumulative > target) return j;
        }
        return last; // rounding left target at the very end
    }

    /// <summary>Softmax in double, for reporting probabilities (analysis); −∞ scores get 0.</summary>
    public static void Softmax(ReadOnlySpan<float> scores, Span<double> probabilities)
    {
        float max = float.NegativeInfinity;
        foreach (float s in scores) if (s > max) max = s;
        double total = 0;
        for (int j = 0; j < scores.Length; j++)
        {
            double p = scores[j] == float.NegativeInfinity || float.IsNaN(scores[j]) ? 0 : Math.Exp((double)scores[j] - max);
            probabilities[j] = p;
            total += p;
        }
        for (int j = 0; j < scores.Length; j++) probabilities[j] /= total;
    }
}

/// <summary>
/// Counter-based random numbers: a pure function of (seed, step, lane), so no generator state has to be
/// carried or restored. SplitMix64 finalisers over the mixed key (Steele et al.); 53-bit uniform doubles.
/// </summary>
public static class CounterRng
{
    public static ulong Next(ulong seed, long step, int lane = 0)
    {
        ulong x = Mix(seed + 0x9E3779B97F4A7C15UL);
        x = Mix(x ^ ((ulong)step * 0xD1B54A32D192ED03UL + 0x8CB92BA72F3D8DD7UL));
        return Mix(x ^ ((ulong)(uint)lane * 0xAEF17502108EF2D9UL + 0x9E3779B97F4A7C15UL));
    }

    /// <summary>Uniform in [0, 1).</summary>
    public static double NextDouble(ulong seed, long step, int lane = 0) => (Next(seed, step, lane) >> 11) * (1.0 / (1UL << 53));

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
