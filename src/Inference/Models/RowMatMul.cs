using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using static ProxyOrleans.Inference.Models.RowKernels;

namespace ProxyOrleans.Inference.Models;

/// <summary>
/// y[i, j] = x[i]·w[j] (+ bias[j]), or y[i, j] += that, for rows x [m, k] and a weight in HF layout [n, k].
/// Every output is one <see cref="RowKernels.Dot"/>-order reduction over k, whether it is computed in a tile of
/// 4 outputs × 2 rows, 4 × 1 or 1 × 1, on one thread or several (threads split the outputs, never k): the result of
/// a row does not depend on the number of rows in the call. The tiles only let a weight row that was read once from
/// memory serve two input rows from L1.
/// </summary>
internal static unsafe class RowMatMul
{
    /// <summary>Below this many multiply-adds a call stays on the calling thread (the split costs more than it saves).</summary>
    private const long ParallelThreshold = 1 << 18;

    public static void Multiply(float* x, int m, float* w, int n, int k, float* bias, float* y, bool accumulate, int threads)
    {
        if (threads <= 1 || (long)m * n * k < ParallelThreshold || n < 8 * threads)
        {
            Range(x, m, w, k, bias, y, n, 0, n, accumulate);
            return;
        }
        nint xp = (nint)x, wp = (nint)w, bp = (nint)bias, yp = (nint)y;
        int block = (n / threads + 3) & ~3;
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
        for (; j + 4 <= to; j += 4)
        {
            float* w0 = w + (long)j * k, w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
            int i = 0;
            for (; i + 2 <= m; i += 2)
            {
                float* x0 = x + (long)i * k, x1 = x0 + k;
                Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default;
                Vector256<float> a10 = default, a11 = default, a12 = default, a13 = default;
                for (int p = 0; p + Lanes <= k; p += Lanes)
                {
                    var u = Vector256.Load(x0 + p); var v = Vector256.Load(x1 + p);
                    var b0 = Vector256.Load(w0 + p); var b1 = Vector256.Load(w1 + p);
                    var b2 = Vector256.Load(w2 + p); var b3 = Vector256.Load(w3 + p);
                    a00 = Vector256.FusedMultiplyAdd(u, b0, a00); a10 = Vector256.FusedMultiplyAdd(v, b0, a10);
                    a01 = Vector256.FusedMultiplyAdd(u, b1, a01); a11 = Vector256.FusedMultiplyAdd(v, b1, a11);
                    a02 = Vector256.FusedMultiplyAdd(u, b2, a02); a12 = Vector256.FusedMultiplyAdd(v, b2, a12);
                    a03 = Vector256.FusedMultiplyAdd(u, b3, a03); a13 = Vector256.FusedMultiplyAdd(v, b3, a13);
                }
                float* y0 = y + (long)i * n, y1 = y0 + n;
                Put(y0, Finish(a00, x0, w0, k), bias, j, accumulate); Put(y1, Finish(a10, x1, w0, k), bias, j, accumulate);
                Put(y0, Finish(a01, x0, w1, k), bias, j + 1, accumulate); Put(y1, Finish(a11, x1, w1, k), bias, j + 1, accumulate);
                Put(y0, Finish(a02, x0, w2, k), bias, j + 2, accumulate); Put(y1, Finish(a12, x1, w2, k), bias, j + 2, accumulate);
                Put(y0, Finish(a03, x0, w3, k), bias, j + 3, accumulate); Put(y1, Finish(a13, x1, w3, k), bias, j + 3, accumulate);
            }
            for (; i < m; i++)
            {
                float* x0 = x + (long)i * k;
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (int p = 0; p + Lanes <= k; p += Lanes)
                {
                    var u = Vector256.Load(x0 + p);
                    a0 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w0 + p), a0);
                    a1 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w1 + p), a1);
                    a2 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w2 + p), a2);
                    a3 = Vector256.FusedMultiplyAdd(u, Vector256.Load(w3 + p), a3);
                }
                float* y0 = y + (long)i * n;
                Put(y0, Finish(a0, x0, w0, k), bias, j, accumulate); Put(y0, Finish(a1, x0, w1, k), bias, j + 1, accumulate);
                Put(y0, Finish(a2, x0, w2, k), bias, j + 2, accumulate); Put(y0, Finish(a3, x0, w3, k), bias, j + 3, accumulate);
            }
        }
        for (; j < to; j++)
            for (int i = 0; i < m; i++)
                Put(y + (long)i * n, Dot(x + (long)i * k, w + (long)j * k, k), bias, j, accumulate);
    }
}
