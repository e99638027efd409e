using ProxyOrleans.Inference.Decoding;
using Xunit;

namespace ProxyOrleans.Inference.Tests.Decoding;

/// <summary>The one step both paths run: a pair's two logits and its host's weighted difference combine to the same bits.</summary>
public class ProxyStepTests
{
    [Fact]
    public void A_weighted_difference_and_both_logits_give_the_bits_of_ProxyCombiner()
    {
        var rng = new Random(5);
        float[] baseLogits = ProxyCombinerTests.RandomLogits(rng, 1003);
        float[] e1 = ProxyCombinerTests.RandomLogits(rng, 1003), a1 = ProxyCombinerTests.RandomLogits(rng, 1003);
        float[] e2 = ProxyCombinerTests.RandomLogits(rng, 1005), a2 = ProxyCombinerTests.RandomLogits(rng, 1005); // two extra expert tokens
        var expected = new float[1003];
        ProxyCombiner.Combine(baseLogits, [e1, e2], [a1, a2], [0.7f, 1.3f], 1.1f, expected);

        var step = new ProxyStep(1.1f, [0.7f, 1.3f]);
        Assert.Equal(expected, step.Combine(baseLogits, [PairLogits.Of(e1, a1), PairLogits.Of(e2, a2)]).ToArray());

        var d2 = new float[1005]; // a pair grain's difference over its own, longer vocabulary: cut to the base's
        ProxyCombiner.WeightedDifference(e2, a2, 1.3f, d2);
        Assert.Equal(expected, step.Combine(baseLogits, [PairLogits.Of(e1, a1), PairLogits.Difference(d2)]).ToArray());
    }

    [Theory]
    [InlineData(1, 32000)] // one pair, as the deployed layout sends it: base + alpha·d in one pass
    [InlineData(1, 37)]    // a vector tail shorter than a lane
    [InlineData(3, 1003)]  // the accumulation across pairs, differences and full logits mixed
    public void Received_differences_combine_to_the_bits_of_ProxyCombiner_step_after_step(int pairs, int vocab)
    {
        var rng = new Random(11 + pairs);
        float[] weights = [.. Enumerable.Range(0, pairs).Select(i => 0.4f + 0.3f * i)];
        var step = new ProxyStep(1.7f, weights);
        for (int t = 0; t < 3; t++) // the step's buffers are reused: every step must still give its own bits
        {
            float[] baseLogits = ProxyCombinerTests.RandomLogits(rng, vocab);
            var experts = Enumerable.Range(0, pairs).Select(_ => ProxyCombinerTests.RandomLogits(rng, vocab)).ToArray();
            var antis = Enumerable.Range(0, pairs).Select(_ => ProxyCombinerTests.RandomLogits(rng, vocab)).ToArray();
            var expected = new float[vocab];
            ProxyCombiner.Combine(baseLogits, [.. experts.Select(e => (ReadOnlyMemory<float>)e)], [.. antis.Select(a => (ReadOnlyMemory<float>)a)], weights, 1.7f, expected);

            var sent = new PairLogits[pairs];
            for (int i = 0; i < pairs; i++)
            {
                if (i % 2 == 1) { sent[i] = PairLogits.Of(experts[i], antis[i]); continue; }
                var d = new float[vocab];
                ProxyCombiner.WeightedDifference(experts[i], antis[i], weights[i], d);
                sent[i] = PairLogits.Difference(d);
            }
            var sentBefore = sent.Select(p => p.Expert.ToArray()).ToArray();
            Assert.Equal(expected, step.Combine(baseLogits, sent).ToArray());
            // The received vectors are read in place, never written.
            for (int i = 0; i < pairs; i++) Assert.Equal(sentBefore[i], sent[i].Expert.ToArray());
        }
    }

    [Fact]
    public void Advance_samples_the_combined_logits()
    {
        var step = new ProxyStep(2f, [1f]);
        var state = new GenerationState(Llama2Tokenizer.Instance, new SamplingOptions { MaxNewTokens = 1 });
        // base favours 0; the expert − anti-expert shift (×2) moves the argmax to 3 (not 2: Llama-2's EOS).
        var outcome = step.Advance(state, [3f, 0f, 1f, 1f], [PairLogits.Of(new float[] { 0f, 0f, 0f, 2f }, new float[] { 0f, 0f, 0f, 0f })]);
        Assert.Equal(3, outcome.TokenId);
        Assert.Equal(FinishReason.Length, outcome.Finish);
        Assert.Equal([3f, 0f, 1f, 5f], step.Combined.ToArray());
    }

    [Fact]
    public void Wrong_inputs_are_refused_with_what_is_wrong()
    {
        var step = new ProxyStep(1f, [1f]);
        Assert.Contains("0 pairs' logits", Assert.Throws<ArgumentException>(() => step.Combine([1f, 2f], [])).Message);
        Assert.Contains("difference of 1 logits", Assert.Throws<ArgumentException>(() => step.Combine([1f, 2f], [PairLogits.Difference(new float[] { 1f })])).Message);
        Assert.Contains("finite", Assert.Throws<ArgumentException>(() => new ProxyStep(float.NaN, [])).Message);
        Assert.Contains("finite", Assert.Throws<ArgumentException>(() => new ProxyStep(1f, [float.PositiveInfinity])).Message);
    }
}
