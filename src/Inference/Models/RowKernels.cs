using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TorchSharp;

namespace ProxyOrleans.Inference.Models;

/// <summary>
/// The C# kernels on one row of floats: RMSNorm, dot product, SwiGLU, attention of one query position. Each sums in
/// one fixed order: 8-lane FMA accumulators (<see cref="Vector256{T}"/>, the same width on every x64 CPU, so the bits
/// do not depend on whether the machine has AVX-512), one fixed horizontal reduction, then the tail in index order.
/// A row's result therefore depends only on the row, never on how many rows share a call.
/// </summary>
internal static unsafe class RowKernels
{
    public const int Lanes = 8;

    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSTensor_data(IntPtr tensor);   // TorchSharp's own native export: at::Tensor::data_ptr()

    /// <summary>The first element of a CPU float tensor (or view) in native memory.</summary>
    public static float* Data(torch.Tensor t) => (float*)THSTensor_data(t.Handle);

    /// <summary>Lanes summed as ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)): the one horizontal order every kernel uses.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Reduce(Vector256<float> v)
    {
        var s = v.GetLower() + v.GetUpper();
        return (s.GetElement(0) + s.GetElement(2)) + (s.GetElement(1) + s.GetElement(3));
    }

    /// <summary>Σ a[i]·b[i] over the 8-lane body of n, reduced, plus the tail: the reduction order of every product.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Finish(Vector256<float> acc, float* a, float* b, int n)
    {
        float s = Reduce(acc);
        for (int i = n & ~(Lanes - 1); i < n; i++) s = MathF.FusedMultiplyAdd(a[i], b[i], s);
        return s;
    }

    public static float Dot(float* a, float* b, int n)
    {
        var acc = Vector256<float>.Zero;
        for (int i = 0; i + Lanes <= n; i += Lanes) acc = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc);
        return Finish(acc, a, b, n);
    }

    /// <summary>y = x / sqrt(mean(x²) + eps) for one row (the norm's weight is folded into the next matrix).</summary>
    public static void RmsNormRow(float* x, float* y, int n, float eps)
    {
        float scale = 1f / MathF.Sqrt(Dot(x, x, n) / n + eps);
        int i = 0;
        var s = Vector256.Create(scale);
        for (; i + Lanes <= n; i += Lanes) (Vector256.Load(x + i) * s).Store(y + i);
        for (; i < n; i++) y[i] = x[i] * scale;
    }

    /// <summary>act = silu(gate) * up, element by element.</summary>
    public static void SwiGluRow(float* gate, float* up, float* act, int n)
    {
        for (int i = 0; i < n; i++) act[i] = gate[i] / (1f + MathF.Exp(-gate[i])) * up[i];
    }

    /// <summary>
    /// One query position of one layer: RoPE on its q and k heads (in place), its k and v written into the cache at
    /// <paramref name="pos"/>, then per query head softmax(q·Kᵀ)·V over positions 0..pos of its kv head (GQA).
    /// <paramref name="qkv"/> is [heads + 2·kv_heads, head_dim] = [q | k | v] with 1/sqrt(head_dim) folded into q;
    /// <paramref name="cache"/> is one layer's [2, kv_heads, allocated, head_dim]; <paramref name="cos"/> and
    /// <paramref name="sin"/> point at the position's row of the <see cref="RopeTable"/>. Earlier positions of a
    /// prefill chunk must have been written first (rows in order), exactly as token-by-token decoding would.
    /// </summary>
    public static void AttendRow(float* qkv, float* cache, int allocated, int pos, float* cos, float* sin, float* output,
        int heads, int kvHeads, int headDim)
    {
        int hd = headDim, len = pos + 1, group = heads / kvHeads;
        var scratch = stackalloc float[hd];
        for (int head = 0; head < heads + kvHeads; head++) RopeTable.RotateHead(qkv + head * hd, cos, sin, hd, scratch);
        long plane = (long)allocated * hd;           // one kv head's rows
        float* keys = cache, values = cache + kvHeads * plane;
        for (int g = 0; g < kvHeads; g++)
        {
            new ReadOnlySpan<float>(qkv + (heads + g) * hd, hd).CopyTo(new Span<float>(keys + g * plane + (long)pos * hd, hd));
            new ReadOnlySpan<float>(qkv + (heads + kvHeads + g) * hd, hd).CopyTo(new Span<float>(values + g * plane + (long)pos * hd, hd));
        }
        Span<float> scores = len <= 4096 ? stackalloc float[len] : new float[len];
        for (int head = 0; head < heads; head++)
        {
            float* q = qkv + head * hd, k = keys + (head / group) * plane, val = values + (head / group) * plane;
            float max = float.NegativeInfinity;
            for (int t = 0; t < len; t++)
            {
                scores[t] = Dot(q, k + (long)t * hd, hd);
                max = MathF.Max(max, scores[t]);
            }
            float sum = 0;
            for (int t = 0; t < len; t++) sum += scores[t] = MathF.Exp(scores[t] - max);
            float* o = output + head * hd;
            fixed (float* p = scores) WeightedSum(p, val, len, hd, o);
            float inverse = 1f / sum;
            for (int i = 0; i < hd; i++) o[i] *= inverse;
        }
    }

    /// <summary>
    /// o[i] = Σ_t p[t]·v[t, i], for each i one FMA chain over t in order from 0. Blocks of 64 (then 8) outputs stay in
    /// registers for the whole pass over the value rows: accumulating through memory made every row wait for the
    /// previous row's store. The order per output is the same either way.
    /// </summary>
    private static void WeightedSum(float* p, float* v, int len, int hd, float* o)
    {
        int i = 0;
        for (; i + 8 * Lanes <= hd; i += 8 * Lanes)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
            float* vt = v + i;
            for (int t = 0; t < len; t++, vt += hd)
            {
                var pv = Vector256.Create(p[t]);
                a0 = Vector256.FusedMultiplyAdd(pv, Vector256.Load(vt), a0);
                a1 = Vector256.FusedMultiplyAdd(pv, Vector256.Load(vt + 8), a1);
                a2 = Vector256.FusedMultiplyAdd(pv, Vector256.Load(vt + 16), a2);
                a3 = Vector256.FusedMultiplyAdd(pv, Vector256.Load(vt + 24), a3);
                a4 = Vector256.FusedMultiplyAdd(pv, Vector256.Load(vt + 32), a4);
                a5 = Vector256.FusedMultiplyAdd(pv, Vector256.Load(vt + 40), a5);
                a6 = Vector256.FusedMultiplyAdd(pv, Vector256.Load(vt + 48), a6);
                a7 = Vector256.FusedMultiplyAdd(pv, Vector256.Load(vt + 56), a7);
            }
            a0.Store(o + i); a1.Store(o + i + 8); a2.Store(o + i + 16); a3.Store(o + i + 24);
            a4.Store(o + i + 32); a5.Store(o + i + 40); a6.Store(o + i + 48); a7.Store(o + i + 56);
        }
        for (; i + Lanes <= hd; i += Lanes)
        {
            var a = Vector256<float>.Zero;
            float* vt = v + i;
            for (int t = 0; t < len; t++, vt += hd) a = Vector256.FusedMultiplyAdd(Vector256.Create(p[t]), Vector256.Load(vt), a);
            a.Store(o + i);
        }
        for (; i < hd; i++)
        {
            float a = 0;
            for (int t = 0; t < len; t++) a = MathF.FusedMultiplyAdd(p[t], v[(long)t * hd + i], a);
            o[i] = a;
        }
    }
}
