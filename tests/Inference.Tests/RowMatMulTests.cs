using System.Runtime.InteropServices;
using ProxyOrleans.Inference.Models;
using Xunit;
using static TorchSharp.torch;

namespace ProxyOrleans.Inference.Tests;

/// <summary>
/// The batch-invariant products on weights packed into panels (<see cref="PanelMatrix"/>): every row of an m-row call
/// is the same bits as that row alone (tiles of 4, 2 and 1 rows, 1 or 2 threads), and the values are the products
/// (against a double-precision reference), including outputs past the last full panel and bias/accumulate.
/// </summary>
public class RowMatMulTests
{
    private static float[] Random(int length, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    }

    private static unsafe float[] Multiply(float[] x, int m, PanelMatrix w, float[]? bias, float[] start, bool accumulate, int threads)
    {
        var y = (float[])start.Clone();
        fixed (float* xp = x, yp = y, bp = bias)
            RowMatMul.Multiply(xp, m, w, bias is null ? null : bp, yp, accumulate, threads);
        return y;
    }

    [Theory]
    [InlineData(1, 1)]      // one output, one input: all padding but one lane
    [InlineData(31, 7)]     // under one panel
    [InlineData(32, 44)]    // exactly one panel
    [InlineData(33, 53)]    // one output into a second panel
    [InlineData(301, 256)]  // the odd vocabulary; large enough for the 2-thread split
    public void EveryRowIsTheSameBitsAsThatRowAloneAndIsTheProduct(int n, int k)
    {
        const int rows = 9;   // tiles 4 + 4 + 1, and 2 + 1 for the 3-row prefix
        var weight = Random(n * k, 1);
        var x = Random(rows * k, 2);
        var bias = Random(n, 3);
        var start = Random(rows * n, 4);
        using var dense = tensor(weight, [n, k]);
        using var packed = PanelMatrix.Pack(dense);
        Assert.Equal(n, packed.Outputs);
        Assert.Equal(k, packed.Inputs);

        foreach (bool accumulate in new[] { false, true })
        foreach (bool withBias in new[] { false, true })
        {
            var b = withBias ? bias : null;
            foreach (int m in new[] { rows, 3, 2 })
            foreach (int threads in new[] { 1, 2 })
            {
                var all = Multiply(x[..(m * k)], m, packed, b, start[..(m * n)], accumulate, threads);
                for (int i = 0; i < m; i++)
                {
                    var alone = Multiply(x[(i * k)..((i + 1) * k)], 1, packed, b, start[(i * n)..((i + 1) * n)], accumulate, 1);
                    var got = all.AsSpan(i * n, n);
                    Assert.True(MemoryMarshal.Cast<float, int>(got).SequenceEqual(MemoryMarshal.Cast<float, int>(alone.AsSpan())),
                        $"row {i} of {m} (n {n}, k {k}, threads {threads}, accumulate {accumulate}, bias {withBias}) differs from the row alone");
                    for (int j = 0; j < n; j++)
                    {
                        double expected = 0;
                        for (int p = 0; p < k; p++) expected += (double)x[i * k + p] * weight[j * k + p];
                        if (withBias) expected += bias[j];
                        if (accumulate) expected += start[i * n + j];
                        Assert.True(Math.Abs(got[j] - expected) <= 1e-5 * (1 + Math.Sqrt(k)),
                            $"row {i} output {j} (n {n}, k {k}): {got[j]} vs {expected}");
                    }
                }
            }
        }
    }

    /// <summary>The 256-bit tiles (CPUs without AVX-512) and the 512-bit ones give the same bits: lanes are outputs.
    /// (Vector512 runs in software where the CPU lacks it, so this runs everywhere.)</summary>
    [Fact]
    public unsafe void The256And512BitTilesGiveTheSameBits()
    {
        const int n = 33, k = 53;   // two panels, the second partial
        var weight = Random(n * k, 5);
        var x = Random(4 * k, 6);
        using var dense = tensor(weight, [n, k]);
        using var packed = PanelMatrix.Pack(dense);
        var narrow = new float[5 * n];   // row 0: the 1-row tile; rows 1-4: the 4-row tile
        var wide = new float[5 * n];
        fixed (float* xp = x, yn = narrow, yw = wide)
            for (int panel = 0; panel < packed.Panels; panel++)
            {
                float* p = packed.Data + (long)panel * k * PanelMatrix.Width;
                int j = panel * PanelMatrix.Width, count = Math.Min(PanelMatrix.Width, n - j);
                RowMatMul.Tile1(xp, p, k, null, yn, j, count, accumulate: false);
                RowMatMul.Tile1Wide(xp, p, k, null, yw, j, count, accumulate: false);
                RowMatMul.Tile4(xp, p, k, null, yn + n, n, j, count, accumulate: false);
                RowMatMul.Tile4Wide(xp, p, k, null, yw + n, n, j, count, accumulate: false);
            }
        Assert.True(MemoryMarshal.Cast<float, int>(narrow.AsSpan()).SequenceEqual(MemoryMarshal.Cast<float, int>(wide.AsSpan())));
    }

    [Fact]
    public void PackingRejectsWhatIsNotAFloatMatrix()
    {
        using var vector = zeros(8);
        var e = Assert.Throws<ArgumentException>(() => PanelMatrix.Pack(vector));
        Assert.Contains("float32 [outputs, inputs]", e.Message);
        using var half = zeros([4, 4], ScalarType.Float16);
        Assert.Throws<ArgumentException>(() => PanelMatrix.Pack(half));
    }
}
