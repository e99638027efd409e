using static TorchSharp.torch;

namespace ProxyOrleans.Inference.Models;

/// <summary>
/// Rotary position embedding in HF's rotate_half layout: x' = x*cos + rotate_half(x)*sin, rotate_half(x) =
/// [-x2, x1] over the two halves of a head. cos and sin are [positions, head_dim] (each frequency twice), computed
/// in float64 and rounded to fp32 once. The training module and both inference paths use these tables.
/// </summary>
internal sealed class RopeTable : IDisposable
{
    private readonly double[] inverseFrequencies;
    private readonly int headDim, maxPositions;
    private readonly Device device;
    private readonly object growGate = new();
    private (Tensor Cos, Tensor Sin) tables;

    public RopeTable(LlamaConfig config, Device device, int initialPositions = 4096)
    {
        inverseFrequencies = config.RopeInverseFrequencies();
        headDim = config.HeadDim;
        maxPositions = config.MaxPositionEmbeddings;
        this.device = device;
        tables = Tensors(Math.Min(initialPositions, maxPositions));
    }

    /// <summary>cos, sin for positions start..start+n-1: [n, head_dim] each, row-major.</summary>
    public static (float[] Cos, float[] Sin) Build(double[] inverseFrequencies, long start, long n)
    {
        int half = inverseFrequencies.Length, width = 2 * half;
        var cos = new float[n * width];
        var sin = new float[n * width];
        for (long p = 0; p < n; p++)
            for (int i = 0; i < half; i++)
            {
                double angle = (start + p) * inverseFrequencies[i];
                long row = p * width;
                cos[row + i] = cos[row + half + i] = (float)Math.Cos(angle);
                sin[row + i] = sin[row + half + i] = (float)Math.Sin(angle);
            }
        return (cos, sin);
    }

    /// <summary>
    /// Tables covering positions 0..positions-1 (grown by doubling when needed). A step keeps the pair it got: tables
    /// replaced while another session's step still reads them are left to the GC (GC.KeepAlive them to the end).
    /// </summary>
    public (Tensor Cos, Tensor Sin) Covering(int positions)
    {
        var t = tables;
        if (positions <= t.Cos.shape[0]) return t;
        lock (growGate)
        {
            if (positions > tables.Cos.shape[0])
                tables = Tensors((int)Math.Min(Math.Max(positions, 2 * tables.Cos.shape[0]), maxPositions));
            return tables;
        }
    }

    /// <summary>One head in place: v = v*cos + rotate_half(v)*sin, with cos/sin the head_dim floats of v's position.</summary>
    public static unsafe void RotateHead(float* v, float* cos, float* sin, int headDim, float* scratch)
    {
        int half = headDim / 2;
        for (int i = 0; i < half; i++) scratch[i] = v[i] * cos[i] - v[i + half] * sin[i];
        for (int i = half; i < headDim; i++) scratch[i] = v[i] * cos[i] + v[i - half] * sin[i];
        new ReadOnlySpan<float>(scratch, headDim).CopyTo(new Span<float>(v, headDim));
    }

    private (Tensor, Tensor) Tensors(int n)
    {
        var (cos, sin) = Build(inverseFrequencies, 0, n);
        return (tensor(cos, new long[] { n, headDim }, device: device).DetachFromDisposeScope(),
                tensor(sin, new long[] { n, headDim }, device: device).DetachFromDisposeScope());
    }

    public void Dispose()
    {
        tables.Cos.Dispose();
        tables.Sin.Dispose();
    }
}
