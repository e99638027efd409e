using ProxyOrleans.Inference.Decoding;
using Xunit;

namespace ProxyOrleans.Inference.Tests.Decoding;

public class ProxyCombinerTests
{
    [Fact]
    public void OnePairMatchesHandComputation()
    {
        // d = 0.5 * ([2, 0, 1] − [1, 1, 1]) = [0.5, −0.5, 0];  base + 2 * d = [2, 1, 3]. Expert has one extra token (9).
        float[] result = new float[3];
        ProxyCombiner.Combine([1f, 2f, 3f], [new float[] { 2f, 0f, 1f, 9f }], [new float[] { 1f, 1f, 1f }], [0.5f], 2f, result);
        Assert.Equal([2f, 1f, 3f], result);
    }

    [Fact]
    public void TwoPairsMatchHandComputation()
    {
        // pair 1: w=1,   e−a = [1, −2, 0.5, 4]       -> d1 = [1, −2, 0.5, 4]
        // pair 2: w=0.25, e−a = [4, 8, −4, 0]        -> d2 = [1, 2, −1, 0]
        // s = [2, 0, −0.5, 4]; alpha = 1.5 -> base + [3, 0, −0.75, 6]
        float[] baseLogits = [0f, 10f, -1f, 2.5f];
        float[] e1 = [3f, -1f, 1f, 5f, 100f, 100f], a1 = [2f, 1f, 0.5f, 1f];
        float[] e2 = [4f, 8f, -4f, 1f], a2 = [0f, 0f, 0f, 1f, 7f];
        float[] result = new float[4];
        ProxyCombiner.Combine(baseLogits, [e1, e2], [a1, a2], [1f, 0.25f], 1.5f, result);
        Assert.Equal([3f, 10f, -1.75f, 8.5f], result);
    }

    [Fact]
    public void AlphaZeroAndNoPairsGiveTheBase()
    {
        float[] baseLogits = [0.1f, -3f, 7.25f];
        float[] result = new float[3];
        ProxyCombiner.Combine(baseLogits, [new float[] { 5f, 5f, 5f }], [new float[] { 1f, 2f, 3f }], [1f], 0f, result);
        Assert.Equal(baseLogits, result);
        ProxyCombiner.CombineDifferences(baseLogits, [], 1f, result);
        Assert.Equal(baseLogits, result);
    }

    [Theory]
    [InlineData(1, 32000)]
    [InlineData(2, 32003)] // odd length: vector body plus scalar tail
    [InlineData(3, 7)]
    public void MatchesScalarDefinitionBitForBit(int pairs, int vocab)
    {
        var rng = new Random(pairs * 1000 + vocab);
        float[] baseLogits = RandomLogits(rng, vocab);
        var experts = Enumerable.Range(0, pairs).Select(i => RandomLogits(rng, vocab + i)).ToArray(); // some longer
        var antis = Enumerable.Range(0, pairs).Select(_ => RandomLogits(rng, vocab)).ToArray();
        float[] weights = [.. Enumerable.Range(0, pairs).Select(_ => (float)rng.NextDouble() * 2 - 0.5f)];
        float alpha = 0.8f;
        float[] result = new float[vocab];
        ProxyCombiner.Combine(baseLogits, [.. experts.Select(e => (ReadOnlyMemory<float>)e)],
            [.. antis.Select(a => (ReadOnlyMemory<float>)a)], weights, alpha, result);

        for (int j = 0; j < vocab; j++)
        {
            float s = weights[0] * (experts[0][j] - antis[0][j]);
            for (int i = 1; i < pairs; i++) s += weights[i] * (experts[i][j] - antis[i][j]);
            float expected = baseLogits[j] + alpha * s;
            Assert.Equal(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(result[j]));
        }
    }

    [Fact]
    public void DifferenceFormEqualsFullFormBitForBit()
    {
        const int vocab = 32000;
        var rng = new Random(7);
        float[] baseLogits = RandomLogits(rng, vocab);
        float[] e1 = RandomLogits(rng, vocab + 3), a1 = RandomLogits(rng, vocab);
        float[] e2 = RandomLogits(rng, vocab), a2 = RandomLogits(rng, vocab);
        float[] full = new float[vocab];
        ProxyCombiner.Combine(baseLogits, [e1, e2], [a1, a2], [0.7f, 1.3f], 1.1f, full);

        // As the coordinator sees it when each expert is hosted with its anti-expert: only d_i arrives.
        float[] d1 = new float[vocab], d2 = new float[vocab];
        ProxyCombiner.WeightedDifference(e1, a1, 0.7f, d1);
        ProxyCombiner.WeightedDifference(e2, a2, 1.3f, d2);
        float[] both = [.. d1, .. d2];
        float[] fromDifferences = new float[vocab];
        ProxyCombiner.CombineDifferences(baseLogits, both, 1.1f, fromDifferences);

        Assert.Equal(full.Select(BitConverter.SingleToInt32Bits), fromDifferences.Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void ShorterExpertIsRefused()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            ProxyCombiner.Combine([1f, 2f, 3f], [new float[] { 1f, 2f }], [new float[] { 1f, 2f, 3f }], [1f], 1f, new float[3]));
        Assert.Contains("fewer than the base", ex.Message);
    }

    [Fact]
    public void MismatchedPairListsAreRefused()
    {
        Assert.Throws<ArgumentException>(() =>
            ProxyCombiner.Combine([1f], [new float[] { 1f }], [], [1f], 1f, new float[1]));
    }

    internal static float[] RandomLogits(Random rng, int n)
    {
        var x = new float[n];
        for (int j = 0; j < n; j++) x[j] = (float)(rng.NextDouble() * 20 - 10);
        return x;
    }
}
