using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using static ProxyOrleans.Inference.Models.RowKernels;

namespace ProxyOrleans.Inference.Models;

/// <summary>
/// y[i, j] = x[i]·w[j] (+ bias[j]), or y[i, j] += that, for rows x [m, k] and a weight in HF layout [n, k].
/// Every output is one <see cref="RowKernels.Dot"/>-order reduction over k, whichever tile computes it (16 outputs ×
/// 1 row, 8 × 2, 8 × 1 or 1 × 1) and on however many threads (threads split the outputs, never k): the result of a
/// row does not depend on the number of rows in the call. Tiles only change speed: one row streams 16 weight rows at
/// once (more loads in flight: ~28 GB/s against ~18 with 4 on this AVX-512 CPU, whose 32 vector registers hold the 16
/// accumulators; docs/model.md), and a pair of rows shares each
/// weight load (8 × 2: a weight row read once from memory serves both rows from L1).
/// </summary>
internal static unsafe class RowMatMul
{
    /// <summary>Below this many multiply-adds a call stays on the calling thread (the split costs more than it saves).</summary>
    private const long ParallelThreshold = 1 << 18;

    public static void Multiply(float* x, int m, float* w, int n, int k, float* bias, float* y, bool accumulate, int threads)
    {
        if (threads <= 1 || (long)m * n * k < ParallelThreshold || n < 16 * threads)
        {
            Range(x, m, w, k, bias, y, n, 0, n, accumulate);
            return;
        }
        nint xp = (nint)x, wp = (nint)w, bp = (nint)bias, yp = (nint)y;
        int block = (n / threads + 15) & ~15;
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
            Range((float*)xp, m, (float*)wp, k, (float*)bp, (float*)yp, n, Math.Min(n, t * block), Math.Min(n, (t + 1) * block), accumulate));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put(float* y, float s, float* bias, int j, bool accumulate)
    {
        if (bias != null) s += bias[j];
        if (accumulate) y[j] += s; else y[j] = s;
    }

    /// <summary>Outputs j in [from, to) of every row; y rows are n wide.</summary>
    private static void Range(float* x, int m, float* w, int k, float* bias, float* y, int n, int from, int to, bool accumulate)
    {
        int j = from;
        if (m == 1)
            for (; j + 16 <= to; j += 16) Tile1x16(x, w + (long)j * k, k, bias, y, j, accumulate);
        else
            for (; j + 8 <= to; j += 8)
            {
                float* w8 = w + (long)j * k;
                int i = 0;
                for (; i + 2 <= m; i += 2) Tile2x8(x + (long)i * k, w8, k, bias, y + (long)i * n, n, j, accumulate);
                if (i < m) Tile1x8(x + (long)i * k, w8, k, bias, y + (long)i * n, j, accumulate);
            }
        for (; j < to; j++)
            for (int i = 0; i < m; i++)
                Put(y + (long)i * n, Dot(x + (long)i * k, w + (long)j * k, k), bias, j, accumulate);
    }

    private static void Tile1x16(float* x, float* w, int k, float* bias, float* y, int j, bool accumulate)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        Vector256<float> a8 = default, a9 = default, a10 = default, a11 = default, a12 = default, a13 = default, a14 = default, a15 = default;
        float* v = w + 8L * k;
        for (int p = 0; p + Lanes <= k; p += Lanes)
        {
            var u = Vector256.Load(x + p);
            a0 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w + p), a0);
            a1 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w + k + p), a1);
            a2 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w + 2 * k + p), a2);
            a3 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w + 3 * k + p), a3);
            a4 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w + 4 * k + p), a4);
            a5 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w + 5 * k + p), a5);
            a6 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w + 6 * k + p), a6);
            a7 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w + 7 * k + p), a7);
            a8 = Vector256.FusedMultiplyAdd(u, Vector256.Load(v + p), a8);
            a9 = Vector256.FusedMultiplyAdd(u, Vector256.Load(v + k + p), a9);
            a10 = Vector256.FusedMultiplyAdd(u, Vector256.Load(v + 2 * k + p), a10);
            a11 = Vector256.FusedMultiplyAdd(u, Vector256.Load(v + 3 * k + p), a11);
            a12 = Vector256.FusedMultiplyAdd(u, Vector256.Load(v + 4 * k + p), a12);
            a13 = Vector256.FusedMultiplyAdd(u, Vector256.Load(v + 5 * k + p), a13);
            a14 = Vector256.FusedMultiplyAdd(u, Vector256.Load(v + 6 * k + p), a14);
            a15 = Vector256.FusedMultiplyAdd(u, Vector256.Load(v + 7 * k + p), a15);
        }
        Put(y, Finish(a0, x, w, k), bias, j, accumulate); Put(y, Finish(a1, x, w + k, k), bias, j + 1, accumulate);
        Put(y, Finish(a2, x, w + 2 * k, k), bias, j + 2, accumulate); Put(y, Finish(a3, x, w + 3 * k, k), bias, j + 3, accumulate);
        Put(y, Finish(a4, x, w + 4 * k, k), bias, j + 4, accumulate); Put(y, Finish(a5, x, w + 5 * k, k), bias, j + 5, accumulate);
        Put(y, Finish(a6, x, w + 6 * k, k), bias, j + 6, accumulate); Put(y, Finish(a7, x, w + 7 * k, k), bias, j + 7, accumulate);
        Put(y, Finish(a8, x, v, k), bias, j + 8, accumulate); Put(y, Finish(a9, x, v + k, k), bias, j + 9, accumulate);
        Put(y, Finish(a10, x, v + 2 * k, k), bias, j + 10, accumulate); Put(y, Finish(a11, x, v + 3 * k, k), bias, j + 11, accumulate);
        Put(y, Finish(a12, x, v + 4 * k, k), bias, j + 12, accumulate); Put(y, Finish(a13, x, v + 5 * k, k), bias, j + 13, accumulate);
        Put(y, Finish(a14, x, v + 6 * k, k), bias, j + 14, accumulate); Put(y, Finish(a15, x, v + 7 * k, k), bias, j + 15, accumulate);
    }

    /// <summary>8 outputs of rows x0 and x0 + k; y0 is row x0's output row, the next output row n further.</summary>
    private static void Tile2x8(float* x0, float* w, int k, float* bias, float* y0, int n, int j, bool accumulate)
    {
        float* x1 = x0 + k;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default, b6 = default, b7 = default;
        for (int p = 0; p + Lanes <= k; p += Lanes)
        {
            var u = Vector256.Load(x0 + p); var v = Vector256.Load(x1 + p);
            var c = Vector256.Load(w + p); a0 = Vector256.FusedMultiplyAdd(u, c, a0); b0 = Vector256.FusedMultiplyAdd(v, c, b0);
            c = Vector256.Load(w + k + p); a1 = Vector256.FusedMultiplyAdd(u, c, a1); b1 = Vector256.FusedMultiplyAdd(v, c, b1);
            c = Vector256.Load(w + 2 * k + p); a2 = Vector256.FusedMultiplyAdd(u, c, a2); b2 = Vector256.FusedMultiplyAdd(v, c, b2);
            c = Vector256.Load(w + 3 * k + p); a3 = Vector256.FusedMultiplyAdd(u, c, a3); b3 = Vector256.FusedMultiplyAdd(v, c, b3);
            c = Vector256.Load(w + 4 * k + p); a4 = Vector256.FusedMultiplyAdd(u, c, a4); b4 = Vector256.FusedMultiplyAdd(v, c, b4);
            c = Vector256.Load(w + 5 * k + p); a5 = Vector256.FusedMultiplyAdd(u, c, a5); b5 = Vector256.FusedMultiplyAdd(v, c, b5);
            c = Vector256.Load(w + 6 * k + p); a6 = Vector256.FusedMultiplyAdd(u, c, a6); b6 = Vector256.FusedMultiplyAdd(v, c, b6);
            c = Vector256.Load(w + 7 * k + p); a7 = Vector256.FusedMultiplyAdd(u, c, a7); b7 = Vector256.FusedMultiplyAdd(v, c, b7);
        }
        float* y1 = y0 + n;
        Put(y0, Finish(a0, x0, w, k), bias, j, accumulate); Put(y1, Finish(b0, x1, w, k), bias, j, accumulate);
        Put(y0, Finish(a1, x0, w + k, k), bias, j + 1, accumulate); Put(y1, Finish(b1, x1, w + k, k), bias, j + 1, accumulate);
        Put(y0, Finish(a2, x0, w + 2 * k, k), bias, j + 2, accumulate); Put(y1, Finish(b2, x1, w + 2 * k, k), bias, j + 2, accumulate);
        Put(y0, Finish(a3, x0, w + 3 * k, k), bias, j + 3, accumulate); Put(y1, Finish(b3, x1, w + 3 * k, k), bias, j + 3, accumulate);
        Put(y0, Finish(a4, x0, w + 4 * k, k), bias, j + 4, accumulate); Put(y1, Finish(b4, x1, w + 4 * k, k), bias, j + 4, accumulate);
        Put(y0, Finish(a5, x0, w + 5 * k, k), bias, j + 5, accumulate); Put(y1, Finish(b5, x1, w + 5 * k, k), bias, j + 5, accumulate);
        Put(y0, Finish(a6, x0, w + 6 * k, k), bias, j + 6, accumulate); Put(y1, Finish(b6, x1, w + 6 * k, k), bias, j + 6, accumulate);
        Put(y0, Finish(a7, x0, w + 7 * k, k), bias, j + 7, accumulate); Put(y1, Finish(b7, x1, w + 7 * k, k), bias, j + 7, accumulate);
    }

    private static void Tile1x8(float* x, float* w, int k, float* bias, float* y, int j, bool accumulate)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        for (int p = 0; p + Lanes <= k; p += Lanes)
        {
            var u = Vector256.Load(x + p);
            a0 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w + p), a0);
            a1 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w + k + p), a1);
            a2 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w + 2 * k + p), a2);
            a3 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w + 3 * k + p), a3);
            a4 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w + 4 * k + p), a4);
            a5 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w + 5 * k + p), a5);
            a6 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w + 6 * k + p), a6);
            a7 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w + 7 * k + p), a7);
        }
        Put(y, Finish(a0, x, w, k), bias, j, accumulate); Put(y, Finish(a1, x, w + k, k), bias, j + 1, accumulate);
        Put(y, Finish(a2, x, w + 2 * k, k), bias, j + 2, accumulate); Put(y, Finish(a3, x, w + 3 * k, k), bias, j + 3, accumulate);
        Put(y, Finish(a4, x, w + 4 * k, k), bias, j + 4, accumulate); Put(y, Finish(a5, x, w + 5 * k, k), bias, j + 5, accumulate);
        Put(y, Finish(a6, x, w + 6 * k, k), bias, j + 6, accumulate); Put(y, Finish(a7, x, w + 7 * k, k), bias, j + 7, accumulate);
    }
}
