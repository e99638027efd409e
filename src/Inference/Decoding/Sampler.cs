using System.Security.Cryptography;

namespace ProxyOrleans.Inference.Decoding;

/// <summary>
/// Picks the next token from combined logits, in the order of the proxy-tuning reference
/// (HF generate's warpers): temperature, then top-k, then top-p, then sampling from the softmax.
/// Temperature 0 is greedy: argmax, lowest id on ties (as torch.argmax), top-k/top-p ignored.
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
        if (options.MaxNewTokens < 1)
            throw new ArgumentException($"MaxNewTokens must be >= 1; got {options.MaxNewTokens}.", nameof(options));
        if (options.Stop is null || options.Stop.Any(string.IsNullOrEmpty))
            throw new ArgumentException("Stop sequences must be non-empty strings.", nameof(options));
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
    /// Applies temperature, top-k and top-p (in that order) into <paramref name="scores"/>: kept tokens hold
    /// logit / temperature, removed ones −∞. Top-k keeps every token whose score is at least the k-th largest
    /// (ties at the boundary are all kept, as HF's TopKLogitsWarper does). Top-p keeps the smallest
    /// highest-first set whose probability reaches top_p, plus any token tied with the last one kept.
    /// </summary>
    public static void Warp(ReadOnlySpan<float> logits, SamplingOptions options, Span<float> scores)
    {
        if (scores.Length != logits.Length) throw new ArgumentException("Scores must be as long as the logits.", nameof(scores));
        float t = options.Temperature > 0 ? options.Temperature : 1f;
        for (int j = 0; j < logits.Length; j++) scores[j] = t == 1f ? logits[j] : logits[j] / t;
        for (int j = 0; j < scores.Length; j++) if (float.IsNaN(scores[j])) scores[j] = float.NegativeInfinity;

        if (options.TopK > 0 && options.TopK < scores.Length)
        {
            float kth = KthLargest(scores, options.TopK);
            for (int j = 0; j < scores.Length; j++) if (scores[j] < kth) scores[j] = float.NegativeInfinity;
        }

        if (options.TopP < 1f)
        {
            // Sort the surviving tokens highest first (ties: lower id first) and accumulate their probabilities.
            int count = 0;
            for (int j = 0; j < scores.Length; j++) if (scores[j] != float.NegativeInfinity) count++;
            if (count == 0) return;
            int[] order = new int[count];
            float[] keys = new float[count];
            for (int j = 0, c = 0; j < scores.Length; j++)
                if (scores[j] != float.NegativeInfinity) { order[c] = j; keys[c] = -scores[j]; c++; }
            Array.Sort(keys, order); // keys ascending = scores descending
            SortTiesById(keys, order);

            double max = -keys[0], total = 0;
            for (int c = 0; c < count; c++) total += Math.Exp(-keys[c] - max);
            double cumulative = 0;
            float threshold = -keys[0];
            for (int c = 0; c < count; c++)
            {
                threshold = -keys[c];
                cumulative += Math.Exp(-keys[c] - max) / total;
                if (cumulative >= options.TopP) break;
            }
            for (int j = 0; j < scores.Length; j++) if (scores[j] < threshold) scores[j] = float.NegativeInfinity;
        }
    }

    /// <summary>
    /// Inverse-CDF draw from softmax(scores) in id order with a uniform <paramref name="u"/> in [0, 1):
    /// the first id whose cumulative probability exceeds u. Probabilities are computed in double.
    /// </summary>
    public static int SampleFromScores(ReadOnlySpan<float> scores, double u)
    {
        float max = float.NegativeInfinity;
        foreach (float s in scores) if (s > max) max = s;
        if (max == float.NegativeInfinity) throw new InvalidOperationException("Every token was filtered out; nothing to sample.");
        double total = 0;
        foreach (float s in scores) if (s != float.NegativeInfinity) total += Math.Exp((double)s - max);
        double target = u * total, cumulative = 0;
        int last = -1;
        for (int j = 0; j < scores.Length; j++)
        {
            if (scores[j] == float.NegativeInfinity) continue;
            cumulative += Math.Exp((double)scores[j] - max);
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

    private static float KthLargest(ReadOnlySpan<float> scores, int k)
    {
        float[] copy = scores.ToArray();
        Array.Sort(copy);
        return copy[copy.Length - k];
    }

    // Array.Sort is not stable: put equal keys back in ascending id order so the order is fully defined.
    private static void SortTiesById(float[] keys, int[] order)
    {
        int start = 0;
        for (int c = 1; c <= keys.Length; c++)
        {
            if (c == keys.Length || keys[c] != keys[start])
            {
                if (c - start > 1) Array.Sort(order, start, c - start);
                start = c;
            }
        }
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
