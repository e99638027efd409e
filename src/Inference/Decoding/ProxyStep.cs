using System.Diagnostics;

namespace ProxyOrleans.Inference.Decoding;

/// <summary>
/// What one expert/anti-expert pair contributes to a step: both models' logits, or the weighted difference
/// w·(expert − antiExpert) that a host running both models computed already (with
/// <see cref="ProxyCombiner.WeightedDifference"/>, so the bits are the same either way).
/// </summary>
public readonly struct PairLogits
{
    private PairLogits(ReadOnlyMemory<float> expert, ReadOnlyMemory<float> antiExpert, bool isDifference)
    {
        Expert = expert;
        AntiExpert = antiExpert;
        IsWeightedDifference = isDifference;
    }

    /// <summary>The expert's logits, or the weighted difference when <see cref="IsWeightedDifference"/>.</summary>
    public ReadOnlyMemory<float> Expert { get; }
    public ReadOnlyMemory<float> AntiExpert { get; }
    public bool IsWeightedDifference { get; }

    public static PairLogits Of(ReadOnlyMemory<float> expert, ReadOnlyMemory<float> antiExpert) => new(expert, antiExpert, false);

    public static PairLogits Difference(ReadOnlyMemory<float> weightedDifference) => new(weightedDifference, default, true);
}

/// <summary>
/// One decoding step of a proxy-tuned generation: combine base + alpha·Σ w_i(expert_i − antiExpert_i) with
/// <see cref="ProxyCombiner"/>, then sample and stop with <see cref="GenerationState.Advance"/>. The single-process
/// <see cref="ProxyDecoder"/> and the cluster's coordinator grain both call <see cref="Advance"/>, so the two
/// paths run the same code per token. Holds the step's buffers (reused every step) and the time spent in each half.
/// </summary>
public sealed class ProxyStep
{
    private readonly float alpha;
    private readonly float[] weights;
    private float[] combined = [], differences = [], scoredLogits = [];

    /// <param name="alpha">The combination's alpha (finite).</param>
    /// <param name="weights">Each pair's weight w_i, in the combination's pair order.</param>
    public ProxyStep(float alpha, IReadOnlyList<float> weights)
    {
        if (!float.IsFinite(alpha)) throw new ArgumentException($"Alpha must be a finite number; got {alpha}.", nameof(alpha));
        foreach (float w in weights)
            if (!float.IsFinite(w)) throw new ArgumentException($"Pair weights must be finite; got {w}.", nameof(weights));
        this.alpha = alpha;
        this.weights = [.. weights];
    }

    public int Pairs => weights.Length;
    public float Alpha => alpha;
    public IReadOnlyList<float> Weights => weights;

    /// <summary>The combined logits of the last <see cref="Combine"/> (the base's vocabulary size).</summary>
    public ReadOnlySpan<float> Combined => combined;

    /// <summary>Stopwatch ticks spent combining and spent sampling/stopping, over all steps so far.</summary>
    public long CombineTicks { get; private set; }
    public long SampleTicks { get; private set; }
    /// <summary>How many times <see cref="Combine"/> ran (one more than the tokens handed on when a run ends).</summary>
    public int Combines { get; private set; }

    /// <summary>Combines one step's logits; longer expert vocabularies are cut to the base's, shorter ones refused.</summary>
    public ReadOnlySpan<float> Combine(ReadOnlySpan<float> baseLogits, ReadOnlySpan<PairLogits> pairs)
    {
        if (pairs.Length != weights.Length)
            throw new ArgumentException($"{pairs.Length} pairs' logits for a combination of {weights.Length} pairs.", nameof(pairs));
        long start = Stopwatch.GetTimestamp();
        int n = baseLogits.Length;
        if (combined.Length != n) combined = new float[n];
        // Each d_i is read where it is: a difference a pair host sent is not copied into a buffer first (at a 32k
        // vocabulary that copy was 128 KiB per pair per step, every step of every stream).
        if (pairs.Length == 0) baseLogits.CopyTo(combined);
        for (int i = 0; i < pairs.Length; i++)
        {
            var pair = pairs[i];
            ReadOnlySpan<float> d;
            if (!pair.IsWeightedDifference)
            {
                if (differences.Length != n) differences = new float[n];
                ProxyCombiner.WeightedDifference(pair.Expert.Span, pair.AntiExpert.Span, weights[i], differences);
                d = differences;
            }
            else if (pair.Expert.Length < n)
                throw new ArgumentException($"Pair {i} sent a difference of {pair.Expert.Length} logits; the base has {n}.", nameof(pairs));
            else d = pair.Expert.Span[..n];
            ProxyCombiner.AddDifference(baseLogits, alpha, d, i, pairs.Length, combined);
        }
        CombineTicks += Stopwatch.GetTimestamp() - start;
        Combines++;
        return combined;
    }

    /// <summary>Record each sampled token's log-probability with this many top alternatives (null: off).</summary>
    public int? TopLogprobs { get; init; }

    /// <summary>With <see cref="TopLogprobs"/>: the token the last <see cref="Advance"/> sampled, scored by the combined logits.</summary>
    public TokenLogprobs? LastLogprobs { get; private set; }

    /// <summary>Combine, then sample the token and apply EOS, stop sequences, max tokens and the context window.</summary>
    public StepOutcome Advance(GenerationState state, ReadOnlySpan<float> baseLogits, ReadOnlySpan<PairLogits> pairs)
    {
        ArgumentNullException.ThrowIfNull(state);
        Combine(baseLogits, pairs);
        long start = Stopwatch.GetTimestamp();
        // Scored as combined, before any logits processor or sampling touches them (TokenLogprobs says why): kept aside here,
        // right after combining.
        if (TopLogprobs is not null)
        {
            if (scoredLogits.Length != combined.Length) scoredLogits = new float[combined.Length];
            combined.CopyTo(scoredLogits, 0);
        }
        var outcome = state.Advance(combined);
        LastLogprobs = TopLogprobs is int top ? TokenLogprobs.Of(state.Candidates(scoredLogits), outcome.TokenId, top) : null;
        SampleTicks += Stopwatch.GetTimestamp() - start;
        return outcome;
    }
}
