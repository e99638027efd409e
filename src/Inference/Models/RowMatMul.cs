using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using static TorchSharp.torch;

namespace ProxyOrleans.Inference.Models;

/// <summary>
/// A weight of HF layout [n, k] repacked once at load for <see cref="RowMatMul"/>: panels of
/// <see cref="Width"/> outputs, and within a panel, for each k, the panel's weights contiguous ([panels, k, Width]).
/// A product then reads one sequential array (the hardware prefetcher follows one stream, not 16 rows at once).
/// Outputs past n in the last panel are zero rows and are never stored. The packed copy replaces the [n, k] one.
/// It lives in native memory aligned to 2 MiB and advised for transparent huge pages on Linux: on 4 KiB pages the
/// stream crosses a page every 4 KiB, and one-row decode measured faster on huge pages (docs/model.md).
/// </summary>
internal sealed unsafe class PanelMatrix : IDisposable
{
    public const int Width = 32;
    private const nuint HugePage = 2 << 20;
    private const int MadvHugePage = 14;   // MADV_HUGEPAGE in Linux's mman.h

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "madvise")]
    private static extern int Madvise(void* address, nuint length, int advice);

    private float* data;

    public int Outputs { get; }
    public int Inputs { get; }
    public int Panels => (Outputs + Width - 1) / Width;
    public float* Data => data != null ? data : throw new ObjectDisposedException(nameof(PanelMatrix));

    private PanelMatrix(float* data, int outputs, int inputs)
    {
        this.data = data;
        Outputs = outputs;
        Inputs = inputs;
    }

    /// <summary>Packs a float32 [n, k] weight; the caller keeps (and disposes) <paramref name="weight"/>.</summary>
    public static PanelMatrix Pack(Tensor weight)
    {
        if (weight.dim() != 2 || weight.dtype != ScalarType.Float32)
            throw new ArgumentException($"PanelMatrix.Pack needs a float32 [outputs, inputs] weight, got {weight.dtype} [{string.Join(", ", weight.shape)}].", nameof(weight));
        int n = (int)weight.shape[0], k = (int)weight.shape[1];
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        int panels = (n + Width - 1) / Width;
        var padded = panels * Width == n ? weight : nn.functional.pad(weight, [0, 0, 0, panels * Width - n]);
        var packed = padded.reshape(panels, Width, k).transpose(1, 2).contiguous();
        long count = (long)panels * Width * k;
        nuint bytes = ((nuint)count * sizeof(float) + HugePage - 1) & ~(HugePage - 1);
        var data = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(bytes, HugePage);
        // Advice before the first touch, so the pages are faulted in huge; where it is refused (other OS, THP off)
        // the memory is ordinary pages and only slower.
        if (OperatingSystem.IsLinux()) Madvise(data, bytes, MadvHugePage);
        Buffer.MemoryCopy(RowKernels.Data(packed), data, (long)bytes, count * sizeof(float));
        return new PanelMatrix(data, n, k);
    }

    public void Dispose()
    {
        if (data == null) return;
        System.Runtime.InteropServices.NativeMemory.AlignedFree(data);
        data = null;
        GC.SuppressFinalize(this);
    }

    ~PanelMatrix()
    {
        if (data != null) System.Runtime.InteropServices.NativeMemory.AlignedFree(data);
    }
}

/// <summary>
/// y[i, j] = x[i]·w[j] (+ bias[j]), or y[i, j] += that, for rows x [m, k] and a <see cref="PanelMatrix"/> w of n
/// outputs. Every output is one FMA chain over k in index order (s = fma(x[p], w[j, p], s) from s = 0), then + bias,
/// then into y: the lanes of a vector are different outputs, never parts of one sum, so the result is the same bits
/// for any vector width, any tile (1, 2 or 4 rows × one panel) and any thread count (threads split the panels, never
/// k): a row's outputs do not depend on the number of rows in the call. Tiles only change speed: one row streams
/// the panel with 4 independent 8-lane chains (enough to hide FMA latency), and 2 or 4 rows share each weight load.
/// </summary>
internal static unsafe class RowMatMul
{
    /// <summary>Below this many multiply-adds a call stays on the calling thread (the split costs more than it saves).</summary>
    private const long ParallelThreshold = 1 << 18;

    private const int W = PanelMatrix.Width;

    public static void Multiply(float* x, int m, PanelMatrix w, float* bias, float* y, bool accumulate, int threads)
    {
        int n = w.Outputs, k = w.Inputs, panels = w.Panels;
        float* data = w.Data;
        if (threads <= 1 || (long)m * n * k < ParallelThreshold || panels < 2 * threads)
        {
            Range(x, m, data, n, k, bias, y, 0, panels, accumulate);
            return;
        }
        nint xp = (nint)x, wp = (nint)data, bp = (nint)bias, yp = (nint)y;
        int block = (panels + threads - 1) / threads;
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
            Range((float*)xp, m, (float*)wp, n, k, (float*)bp, (float*)yp, Math.Min(panels, t * block), Math.Min(panels, (t + 1) * block), accumulate));
    }

    /// <summary>Panels [from, to) for every row; y rows are n wide.</summary>
    private static void Range(float* x, int m, float* w, int n, int k, float* bias, float* y, int from, int to, bool accumulate)
    {
        for (int panel = from; panel < to; panel++)
        {
            float* p = w + (long)panel * k * W;
            int j = panel * W, count = Math.Min(W, n - j);
            int i = 0;
            // Vector512 where the CPU has it (half the instructions); the bits are the same either way.
            if (Vector512.IsHardwareAccelerated)
                for (; i + 4 <= m; i += 4) Tile4Wide(x + (long)i * k, p, k, bias, y + (long)i * n, n, j, count, accumulate);
            else
                for (; i + 4 <= m; i += 4) Tile4(x + (long)i * k, p, k, bias, y + (long)i * n, n, j, count, accumulate);
            for (; i + 2 <= m; i += 2) Tile2(x + (long)i * k, p, k, bias, y + (long)i * n, n, j, count, accumulate);
            if (i < m)
            {
                if (Vector512.IsHardwareAccelerated) Tile1Wide(x + (long)i * k, p, k, bias, y + (long)i * n, j, count, accumulate);
                else Tile1(x + (long)i * k, p, k, bias, y + (long)i * n, j, count, accumulate);
            }
        }
    }

    /// <summary>Writes one row's 32 panel sums (at s) to outputs j..j+count-1: + bias, then = or += into y. The tiles
    /// hand their accumulators over through memory: vector values live across a call are spilled on every loop turn.</summary>
    private static void Store(float* s, float* bias, float* y, int j, int count, bool accumulate)
    {
        if (count == W)
        {
            for (int c = 0; c < W; c += 8)
            {
                var v = Vector256.Load(s + c);
                if (bias != null) v += Vector256.Load(bias + j + c);
                if (accumulate) v = Vector256.Load(y + j + c) + v;
                v.Store(y + j + c);
            }
            return;
        }
        // The last, partial panel: the same additions one output at a time.
        for (int c = 0; c < count; c++)
        {
            float v = s[c];
            if (bias != null) v += bias[j + c];
            if (accumulate) y[j + c] += v; else y[j + c] = v;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put(float* s, Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3)
    {
        a0.Store(s); a1.Store(s + 8); a2.Store(s + 16); a3.Store(s + 24);
    }

    internal static void Tile1(float* x, float* p, int k, float* bias, float* y, int j, int count, bool accumulate)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int q = 0; q < k; q++, p += W)
        {
            var u = Vector256.Create(x[q]);
            a0 = Vector256.FusedMultiplyAdd(u, Vector256.Load(p), a0);
            a1 = Vector256.FusedMultiplyAdd(u, Vector256.Load(p + 8), a1);
            a2 = Vector256.FusedMultiplyAdd(u, Vector256.Load(p + 16), a2);
            a3 = Vector256.FusedMultiplyAdd(u, Vector256.Load(p + 24), a3);
        }
        float* s = stackalloc float[W];
        Put(s, a0, a1, a2, a3);
        Store(s, bias, y, j, count, accumulate);
    }

    /// <summary>Rows x0 and x0 + k; y0 is row x0's output row, the next one n further.</summary>
    private static void Tile2(float* x0, float* p, int k, float* bias, float* y0, int n, int j, int count, bool accumulate)
    {
        float* x1 = x0 + k;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
        for (int q = 0; q < k; q++, p += W)
        {
            var u = Vector256.Create(x0[q]); var v = Vector256.Create(x1[q]);
            var c = Vector256.Load(p); a0 = Vector256.FusedMultiplyAdd(u, c, a0); b0 = Vector256.FusedMultiplyAdd(v, c, b0);
            c = Vector256.Load(p + 8); a1 = Vector256.FusedMultiplyAdd(u, c, a1); b1 = Vector256.FusedMultiplyAdd(v, c, b1);
            c = Vector256.Load(p + 16); a2 = Vector256.FusedMultiplyAdd(u, c, a2); b2 = Vector256.FusedMultiplyAdd(v, c, b2);
            c = Vector256.Load(p + 24); a3 = Vector256.FusedMultiplyAdd(u, c, a3); b3 = Vector256.FusedMultiplyAdd(v, c, b3);
        }
        float* s = stackalloc float[2 * W];
        Put(s, a0, a1, a2, a3); Put(s + W, b0, b1, b2, b3);
        Store(s, bias, y0, j, count, accumulate);
        Store(s + W, bias, y0 + n, j, count, accumulate);
    }

    /// <summary>Rows x0 .. x0 + 3k (16 accumulators: AVX-512's 32 vector registers hold them with the weights).</summary>
    internal static void Tile4(float* x0, float* p, int k, float* bias, float* y0, int n, int j, int count, bool accumulate)
    {
        float* x1 = x0 + k, x2 = x1 + k, x3 = x2 + k;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
        Vector256<float> c0 = default, c1 = default, c2 = default, c3 = default;
        Vector256<float> d0 = default, d1 = default, d2 = default, d3 = default;
        for (int q = 0; q < k; q++, p += W)
        {
            var w0 = Vector256.Load(p); var w1 = Vector256.Load(p + 8); var w2 = Vector256.Load(p + 16); var w3 = Vector256.Load(p + 24);
            var u = Vector256.Create(x0[q]);
            a0 = Vector256.FusedMultiplyAdd(u, w0, a0); a1 = Vector256.FusedMultiplyAdd(u, w1, a1);
            a2 = Vector256.FusedMultiplyAdd(u, w2, a2); a3 = Vector256.FusedMultiplyAdd(u, w3, a3);
            u = Vector256.Create(x1[q]);
            b0 = Vector256.FusedMultiplyAdd(u, w0, b0); b1 = Vector256.FusedMultiplyAdd(u, w1, b1);
            b2 = Vector256.FusedMultiplyAdd(u, w2, b2); b3 = Vector256.FusedMultiplyAdd(u, w3, b3);
            u = Vector256.Create(x2[q]);
            c0 = Vector256.FusedMultiplyAdd(u, w0, c0); c1 = Vector256.FusedMultiplyAdd(u, w1, c1);
            c2 = Vector256.FusedMultiplyAdd(u, w2, c2); c3 = Vector256.FusedMultiplyAdd(u, w3, c3);
            u = Vector256.Create(x3[q]);
            d0 = Vector256.FusedMultiplyAdd(u, w0, d0); d1 = Vector256.FusedMultiplyAdd(u, w1, d1);
            d2 = Vector256.FusedMultiplyAdd(u, w2, d2); d3 = Vector256.FusedMultiplyAdd(u, w3, d3);
        }
        float* s = stackalloc float[4 * W];
        Put(s, a0, a1, a2, a3); Put(s + W, b0, b1, b2, b3); Put(s + 2 * W, c0, c1, c2, c3); Put(s + 3 * W, d0, d1, d2, d3);
        for (int r = 0; r < 4; r++) Store(s + r * W, bias, y0 + r * (long)n, j, count, accumulate);
    }

    /// <summary><see cref="Tile1"/> with 16-lane vectors.</summary>
    internal static void Tile1Wide(float* x, float* p, int k, float* bias, float* y, int j, int count, bool accumulate)
    {
        Vector512<float> a0 = default, a1 = default;
        for (int q = 0; q < k; q++, p += W)
        {
            var u = Vector512.Create(x[q]);
            a0 = Vector512.FusedMultiplyAdd(u, Vector512.Load(p), a0);
            a1 = Vector512.FusedMultiplyAdd(u, Vector512.Load(p + 16), a1);
        }
        float* s = stackalloc float[W];
        a0.Store(s); a1.Store(s + 16);
        Store(s, bias, y, j, count, accumulate);
    }

    /// <summary><see cref="Tile4"/> with 16-lane vectors.</summary>
    internal static void Tile4Wide(float* x0, float* p, int k, float* bias, float* y0, int n, int j, int count, bool accumulate)
    {
        float* x1 = x0 + k, x2 = x1 + k, x3 = x2 + k;
        Vector512<float> a0 = default, a1 = default, b0 = default, b1 = default, c0 = default, c1 = default, d0 = default, d1 = default;
        for (int q = 0; q < k; q++, p += W)
        {
            var w0 = Vector512.Load(p); var w1 = Vector512.Load(p + 16);
            var u = Vector512.Create(x0[q]); a0 = Vector512.FusedMultiplyAdd(u, w0, a0); a1 = Vector512.FusedMultiplyAdd(u, w1, a1);
            u = Vector512.Create(x1[q]); b0 = Vector512.FusedMultiplyAdd(u, w0, b0); b1 = Vector512.FusedMultiplyAdd(u, w1, b1);
            u = Vector512.Create(x2[q]); c0 = Vector512.FusedMultiplyAdd(u, w0, c0); c1 = Vector512.FusedMultiplyAdd(u, w1, c1);
            u = Vector512.Create(x3[q]); d0 = Vector512.FusedMultiplyAdd(u, w0, d0); d1 = Vector512.FusedMultiplyAdd(u, w1, d1);
        }
        float* s = stackalloc float[4 * W];
        a0.Store(s); a1.Store(s + 16); b0.Store(s + W); b1.Store(s + W + 16);
        c0.Store(s + 2 * W); c1.Store(s + 2 * W + 16); d0.Store(s + 3 * W); d1.Store(s + 3 * W + 16);
        for (int r = 0; r < 4; r++) Store(s + r * W, bias, y0 + r * (long)n, j, count, accumulate);
    }
}
