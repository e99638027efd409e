using System.Numerics;
using System.Runtime.InteropServices;

namespace ProxyOrleans.Inference.Decoding;

/// <summary>
/// The proxy-tuning combination, in float32, with one fixed arithmetic so that every host computes the
/// same bits:
/// <code>
///   d_i[j]      = w_i * (expert_i[j] − antiExpert_i[j])        (WeightedDifference)
///   s[j]        = ((d_0[j] + d_1[j]) + d_2[j]) + …             (pairs in the combination's order)
///   combined[j] = base[j] + alpha * s[j]
/// </code>
/// An expert hosted with its anti-expert may send d_i alone (computed by <see cref="WeightedDifference"/>);
/// the coordinator then calls <see cref="CombineDifferences"/>, which gives exactly the bits of
/// <see cref="Combine"/> on the full logits because the full form is defined as that same two-stage
/// computation. Vectorised and scalar lanes do the same IEEE operations, and .NET does not contract
/// multiply-add into FMA, so results do not depend on the machine's vector width.
/// Experts and anti-experts with a longer vocabulary than the base (a few added tokens) are truncated to
/// the base's size, as the reference implementation does; shorter ones are refused.
/// </summary>
public static class ProxyCombiner
{
    /// <summary>
    /// d = weight * (expert − antiExpert) over the first destination.Length entries (the base's vocabulary):
    /// the only way a weighted difference is computed, on the expert's host or on the coordinator.
    /// </summary>
    public static void WeightedDifference(ReadOnlySpan<float> expert, ReadOnlySpan<float> antiExpert, float weight,
        Span<float> destination)
    {
        int n = destination.Length;
        if (expert.Length < n)
            throw new ArgumentException($"Expert logits have {expert.Length} entries, fewer than the base's {n}.", nameof(expert));
        if (antiExpert.Length < n)
            throw new ArgumentException($"Anti-expert logits have {antiExpert.Length} entries, fewer than the base's {n}.", nameof(antiExpert));
        expert = expert[..n];
        antiExpert = antiExpert[..n];
        int j = 0;
        if (Vector.IsHardwareAccelerated && n >= Vector<float>.Count)
        {
            var e = MemoryMarshal.Cast<float, Vector<float>>(expert);
            var a = MemoryMarshal.Cast<float, Vector<float>>(antiExpert);
            var d = MemoryMarshal.Cast<float, Vector<float>>(destination);
            var w = new Vector<float>(weight);
            for (int v = 0; v < d.Length; v++) d[v] = w * (e[v] - a[v]);
            j = d.Length * Vector<float>.Count;
        }
        for (; j < n; j++) destination[j] = weight * (expert[j] - antiExpert[j]);
    }

    /// <summary>
    /// combined = base + alpha * Σ d_i, where <paramref name="weightedDifferences"/> holds the d_i of all pairs
    /// back to back (pairs × base vocabulary, in the combination's pair order). With no pairs, combined = base.
    /// </summary>
    public static void CombineDifferences(ReadOnlySpan<float> baseLogits, ReadOnlySpan<float> weightedDifferences,
        float alpha, Span<float> destination)
    {
        int n = baseLogits.Length;
        if (destination.Length != n)
            throw new ArgumentException($"Destination has {destination.Length} entries; the base vocabulary has {n}.", nameof(destination));
        if (n == 0) return;
        if (weightedDifferences.Length % n != 0)
            throw new ArgumentException(
                $"Weighted differences have {weightedDifferences.Length} entries, not a multiple of the base vocabulary {n}.",
                nameof(weightedDifferences));
        int pairs = weightedDifferences.Length / n;
        if (pairs == 0) { baseLogits.CopyTo(destination); return; }

        for (int i = 0; i < pairs; i++) AddDifference(baseLogits, alpha, weightedDifferences.Slice(i * n, n), i, pairs, destination);
    }

    /// <summary>
    /// Takes d_i, the <paramref name="index"/>-th of <paramref name="count"/> weighted differences, into
    /// <paramref name="destination"/>, which after the last one holds base + alpha · Σ d_i. The one place the combine's
    /// order of arithmetic is written (s = d_0, s += d_i in pair order, then base + alpha · s; one pair in one pass), so
    /// that a caller holding each d_i somewhere else (<see cref="ProxyStep"/>: where the wire put it) gets the bits of
    /// <see cref="CombineDifferences"/> without copying them side by side first.
    /// </summary>
    internal static void AddDifference(ReadOnlySpan<float> baseLogits, float alpha, ReadOnlySpan<float> difference, int index, int count,
        Span<float> destination)
    {
        if (count == 1) { Finish(baseLogits, alpha, difference, destination); return; }
        if (index == 0) difference.CopyTo(destination);
        else AddInPlace(destination, difference);
        if (index == count - 1) Finish(baseLogits, alpha, destination, destination);
    }

    /// <summary>
    /// combined = base + alpha * Σ w_i (expert_i − antiExpert_i): the full form, computed as
    /// <see cref="WeightedDifference"/> per pair followed by <see cref="CombineDifferences"/>.
    /// </summary>
    public static void Combine(ReadOnlySpan<float> baseLogits, IReadOnlyList<ReadOnlyMemory<float>> experts,
        IReadOnlyList<ReadOnlyMemory<float>> antiExperts, IReadOnlyList<float> weights, float alpha, Span<float> destination)
    {
        int pairs = experts.Count;
        if (antiExperts.Count != pairs || weights.Count != pairs)
            throw new ArgumentException(
                $"{pairs} experts, {antiExperts.Count} anti-experts and {weights.Count} weights: each pair needs all three.");
        int n = baseLogits.Length;
        float[] differences = new float[pairs * n];
        for (int i = 0; i < pairs; i++)
            WeightedDifference(experts[i].Span, antiExperts[i].Span, weights[i], differences.AsSpan(i * n, n));
        CombineDifferences(baseLogits, differences, alpha, destination);
    }

    /// <summary>sum += d, element by element.</summary>
    private static void AddInPlace(Span<float> sum, ReadOnlySpan<float> d)
    {
        int n = sum.Length, j = 0;
        if (Vector.IsHardwareAccelerated && n >= Vector<float>.Count)
        {
            var s = MemoryMarshal.Cast<float, Vector<float>>(sum);
            var dv = MemoryMarshal.Cast<float, Vector<float>>(d);
            for (int v = 0; v < s.Length; v++) s[v] += dv[v];
            j = s.Length * Vector<float>.Count;
        }
        for (; j < n; j++) sum[j] += d[j];
    }

    /// <summary>destination = base + alpha * sum, element by element; <paramref name="sum"/> may be <paramref name="destination"/> itself.</summary>
    private static void Finish(ReadOnlySpan<float> baseLogits, float alpha, ReadOnlySpan<float> sum, Span<float> destination)
    {
        int n = destination.Length, j = 0;
        if (Vector.IsHardwareAccelerated && n >= Vector<float>.Count)
        {
            var s = MemoryMarshal.Cast<float, Vector<float>>(sum[..n]);
            var d = MemoryMarshal.Cast<float, Vector<float>>(destination);
            var b = MemoryMarshal.Cast<float, Vector<float>>(baseLogits);
            var a = new Vector<float>(alpha);
            for (int v = 0; v < d.Length; v++)
            {
                var scaled = a * s[v]; // a separate rounding step, like the scalar tail below
                d[v] = b[v] + scaled;
            }
            j = d.Length * Vector<float>.Count;
        }
        for (; j < n; j++)
        {
            float scaled = alpha * sum[j];
            destination[j] = baseLogits[j] + scaled;
        }
    }
}
