using ProxyOrleans.Inference.Decoding;
using Xunit;

namespace ProxyOrleans.Inference.Tests.Decoding;

public class SamplerTests
{
    private static float[] LogProbs(params double[] p) => [.. p.Select(x => (float)Math.Log(x))];

    private static int[] Kept(float[] logits, SamplingOptions options)
    {
        float[] scores = new float[logits.Length];
        Sampler.Warp(logits, options, scores);
        return [.. Enumerable.Range(0, logits.Length).Where(j => scores[j] != float.NegativeInfinity)];
    }

    [Fact]
    public void GreedyPicksArgmaxAndLowestIdOnTies()
    {
        var greedy = new SamplingOptions { Temperature = 0 };
        Assert.Equal(2, Sampler.Sample([1f, -2f, 7.5f, 3f], greedy, 0, 0));
        Assert.Equal(1, Sampler.Sample([1f, 9f, 2f, 9f], greedy, 0, 0));
        Assert.Equal(1, Sampler.Sample([float.NaN, 0f, -1f], greedy, 0, 0));
        // Greedy ignores seed, step, top-k and top-p.
        Assert.Equal(2, Sampler.Sample([1f, -2f, 7.5f, 3f], greedy with { TopK = 1, TopP = 0.1f }, 99, 5));
    }

    [Theory]
    [InlineData(1e-40f)]       // logit / t overflows to ±∞ (a NaN softmax sampled the last token before)
    [InlineData(float.Epsilon)]
    public void ATemperatureSoSmallThatLogitsOverflowSamplesTheLargestLogit(float temperature)
    {
        var tiny = new SamplingOptions { Temperature = temperature };
        for (ulong seed = 0; seed < 20; seed++)
        {
            Assert.Equal(1, Sampler.Sample([1f, 3f, 2f, -4f], tiny, seed, 0));
            Assert.Equal(2, Sampler.Sample([-1f, -3f, 0.5f, -0.25f], tiny, seed, 3));
            Assert.Equal(0, Sampler.Sample([3f, 2.9f, 2.95f], tiny with { TopK = 2, TopP = 0.5f }, seed, 1));
        }
        Assert.Equal([1], Kept([1f, 3f, 2f], tiny));
    }

    [Fact]
    public void TopKKeepsTheKLargest()
    {
        float[] logits = [1f, 5f, 3f, 4f, 2f];
        Assert.Equal([1, 3], Kept(logits, new SamplingOptions { Temperature = 1, TopK = 2 }));
        Assert.Equal([1, 2, 3], Kept(logits, new SamplingOptions { Temperature = 1, TopK = 3 }));
        Assert.Equal([0, 1, 2, 3, 4], Kept(logits, new SamplingOptions { Temperature = 1, TopK = 0 }));
        // Ties at the k-th value are all kept (HF TopKLogitsWarper: remove scores < k-th largest).
        Assert.Equal([0, 1, 2], Kept([4f, 4f, 4f, 1f], new SamplingOptions { Temperature = 1, TopK = 2 }));
    }

    [Fact]
    public void TopPKeepsTheSmallestSetReachingP()
    {
        float[] logits = LogProbs(0.15, 0.5, 0.05, 0.3); // sorted: id1 .5, id3 .3, id0 .15, id2 .05
        Assert.Equal([1], Kept(logits, new SamplingOptions { Temperature = 1, TopP = 0.45f }));
        Assert.Equal([1, 3], Kept(logits, new SamplingOptions { Temperature = 1, TopP = 0.75f }));
        Assert.Equal([0, 1, 3], Kept(logits, new SamplingOptions { Temperature = 1, TopP = 0.9f }));
        Assert.Equal([0, 1, 2, 3], Kept(logits, new SamplingOptions { Temperature = 1, TopP = 0.99f }));
    }

    [Fact]
    public void TemperatureComesBeforeTopP()
    {
        // At T=0.5 probabilities ∝ p²: [.685, .247, .062, .007] for p = [.5, .3, .15, .05]; top-p 0.9 keeps two.
        // Top-p before temperature would have kept three (.5 + .3 < .9).
        float[] logits = LogProbs(0.5, 0.3, 0.15, 0.05);
        Assert.Equal([0, 1], Kept(logits, new SamplingOptions { Temperature = 0.5f, TopP = 0.9f }));
        Assert.Equal([0, 1, 2], Kept(logits, new SamplingOptions { Temperature = 1f, TopP = 0.9f }));
    }

    [Fact]
    public void TopKComesBeforeTopP()
    {
        // Top-k 2 renormalises to [.625, .375]: top-p 0.6 then keeps only id 0; the reverse order would
        // keep {0, 1} from the full distribution (.5 < .6).
        float[] logits = LogProbs(0.5, 0.3, 0.15, 0.05);
        Assert.Equal([0], Kept(logits, new SamplingOptions { Temperature = 1, TopK = 2, TopP = 0.6f }));
        Assert.Equal([0, 1], Kept(logits, new SamplingOptions { Temperature = 1, TopP = 0.6f }));
    }

    [Theory]
    [InlineData(1, 0, 0.9f)]
    [InlineData(2, 40, 1f)]
    [InlineData(3, 40, 0.5f)]
    [InlineData(4, 0, 0.999f)]
    [InlineData(5, 1, 1f)]
    public void FilteringMatchesASortedReferenceOnLargeVocabulariesWithTies(int seed, int topK, float topP)
    {
        var rng = new Random(seed);
        // Rounded to 0.05 so that many scores tie, at the k-th value and at the top-p boundary too.
        float[] logits = [.. Enumerable.Range(0, 32000).Select(_ => MathF.Round((float)(rng.NextDouble() * 12), 1) / 2)];
        var options = new SamplingOptions { Temperature = 0.7f, TopK = topK, TopP = topP };

        // Reference: sort, walk highest first, keep everything tied with the boundary token.
        float[] scaled = [.. logits.Select(x => x / 0.7f)];
        var keep = Enumerable.Range(0, scaled.Length).ToHashSet();
        if (topK > 0)
        {
            float kth = scaled.OrderByDescending(x => x).ElementAt(topK - 1);
            keep.RemoveWhere(j => scaled[j] < kth);
        }
        if (topP < 1)
        {
            double max = keep.Max(j => (double)scaled[j]);
            double total = keep.Sum(j => Math.Exp(scaled[j] - max));
            double cumulative = 0;
            float last = 0;
            foreach (float x in keep.Select(j => scaled[j]).OrderByDescending(x => x))
            {
                last = x;
                cumulative += Math.Exp(x - max) / total;
                if (cumulative >= topP) break;
            }
            keep.RemoveWhere(j => scaled[j] < last);
        }
        Assert.Equal(keep.Order(), Kept(logits, options));
        Assert.True(keep.Count > (topK > 0 ? topK : 1), "ties at the boundary were part of the case");
    }

    [Fact]
    public void SamplingNeverPicksFilteredTokensAndFollowsTheDistribution()
    {
        float[] logits = LogProbs(0.5, 0.3, 0.15, 0.05);
        var options = new SamplingOptions { Temperature = 1, TopK = 3 };
        int[] counts = new int[4];
        const int n = 40000;
        for (int step = 0; step < n; step++) counts[Sampler.Sample(logits, options, 12345, step)]++;
        Assert.Equal(0, counts[3]);
        // Renormalised over three tokens: .5/.95, .3/.95, .15/.95. Binomial sd at n=40000 is < 0.0025.
        Assert.InRange(counts[0] / (double)n, 0.5 / 0.95 - 0.012, 0.5 / 0.95 + 0.012);
        Assert.InRange(counts[1] / (double)n, 0.3 / 0.95 - 0.012, 0.3 / 0.95 + 0.012);
        Assert.InRange(counts[2] / (double)n, 0.15 / 0.95 - 0.012, 0.15 / 0.95 + 0.012);
    }

    [Fact]
    public void DrawsDependOnlyOnSeedAndStep()
    {
        float[] logits = ProxyCombinerTests.RandomLogits(new Random(3), 1000);
        var options = new SamplingOptions { Temperature = 1.5f };
        int[] a = [.. Enumerable.Range(0, 50).Select(s => Sampler.Sample(logits, options, 42, s))];
        int[] b = [.. Enumerable.Range(0, 50).Reverse().Select(s => Sampler.Sample(logits, options, 42, s)).Reverse()];
        int[] c = [.. Enumerable.Range(0, 50).Select(s => Sampler.Sample(logits, options, 43, s))];
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.True(a.Distinct().Count() > 10, "a flat-ish distribution should give varied tokens");
    }

    [Theory]
    [InlineData(-1f, 0, 1f, "Temperature")]
    [InlineData(float.NaN, 0, 1f, "Temperature")]
    [InlineData(1f, -3, 1f, "TopK")]
    [InlineData(1f, 0, 0f, "TopP")]
    [InlineData(1f, 0, 1.5f, "TopP")]
    public void BadOptionsAreRefusedByName(float temperature, int topK, float topP, string field)
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            Sampler.Validate(new SamplingOptions { Temperature = temperature, TopK = topK, TopP = topP }));
        Assert.Contains(field, ex.Message);
    }

    [Fact]
    public void TopTokensAreSortedWithProbabilities()
    {
        var top = StepAnalysis.TopTokens(LogProbs(0.15, 0.5, 0.05, 0.3), 3);
        Assert.Equal([1, 3, 0], top.Select(t => t.Id));
        Assert.Equal(0.5, top[0].Probability, 5);
        Assert.Equal(0.3, top[1].Probability, 5);
    }
}
