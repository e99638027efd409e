using System.Runtime.InteropServices;
using ProxyOrleans.Inference.Models;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Inference.Tests;

/// <summary>
/// A session's logits are the same bits however the work was cut (InferenceOptions.BatchInvariant): alone or batched
/// with 7 other sessions at other positions; a prompt prefilled at once, token by token, in chunks, or its history
/// re-prefilled into a fresh session (a resume after failover). Each check also runs with the option off and must
/// find a difference there, so the comparison is sharp enough to catch the torch path's batch-shaped reductions.
/// </summary>
public class BatchInvariantTests(ITestOutputHelper output)
{
    private static int[] Ids(int n, int seed, int vocab)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => rng.Next(vocab)).ToArray();
    }

    /// <summary>Positions whose raw bits differ between two logits rows.</summary>
    private static int BitDifferences(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        var x = MemoryMarshal.Cast<float, int>(a);
        var y = MemoryMarshal.Cast<float, int>(b);
        int n = 0;
        for (int i = 0; i < x.Length; i++) if (x[i] != y[i]) n++;
        return n;
    }

    /// <summary>The tiny GQA model, and one whose sizes are no multiple of 8 (every kernel's tail path).</summary>
    private static LlamaConfig Config(bool oddSizes) => oddSizes
        ? TinyHfModels.Tiny() with { HiddenSize = 44, IntermediateSize = 53, HeadDim = 10, VocabSize = 301 }
        : TinyHfModels.Tiny();

    [Theory]
    [InlineData(true, false)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    public void ASessionAloneAndBatchedWithSevenOthersGetsTheSameBits(bool invariant, bool oddSizes)
    {
        var config = Config(oddSizes);
        string dir = TinyHfModels.SaveInNewDir(config, "invariant-batch");
        using var model = LlamaInferenceModel.Load(dir, new InferenceOptions { Threads = 1, BatchInvariant = invariant });
        int v = model.VocabSize;
        var prompt = Ids(9, 1, v);
        using var alone = model.CreateSession(64);
        var batch = Enumerable.Range(0, 8).Select(_ => model.CreateSession(64)).ToArray();
        const int target = 3;   // the session under test sits in the middle of the batch
        var scratch = new float[v];
        alone.Append(prompt, scratch);
        for (int i = 0; i < batch.Length; i++) batch[i].Append(i == target ? prompt : Ids(1 + 5 * i, 20 + i, v), scratch);

        var one = new float[v];
        var all = new float[batch.Length * v];
        int differing = 0;
        for (int step = 0; step < 8; step++)
        {
            var tokens = Ids(batch.Length, 100 + step, v);
            alone.Append(tokens.AsSpan(target, 1), one);
            model.StepBatch(batch, tokens, all);
            differing += BitDifferences(one, all.AsSpan(target * v, v));
        }
        output.WriteLine($"invariant={invariant}: {differing} of {8 * v} logits differ in their bits");
        if (invariant) Assert.Equal(0, differing);
        else Assert.True(differing > 0, "the torch path was expected to differ in the last bits; the check would not notice a regression");
        foreach (var s in batch) s.Dispose();
    }

    [Theory]
    [InlineData(true, false)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    public void APromptPrefilledAtOnceInChunksTokenByTokenOrResumedGetsTheSameBits(bool invariant, bool oddSizes)
    {
        var config = Config(oddSizes);
        string dir = TinyHfModels.SaveInNewDir(config, "invariant-prefill");
        using var model = LlamaInferenceModel.Load(dir, new InferenceOptions { Threads = 1, BatchInvariant = invariant });
        int v = model.VocabSize;
        var prompt = Ids(24, 2, v);
        int[] chunks = [5, 1, 11, 7];
        var ends = chunks.Select((_, i) => chunks.Take(i + 1).Sum()).ToArray();   // 5, 6, 17, 24

        // Token by token: the logits after each position.
        using var single = model.CreateSession(64);
        var perPosition = new float[prompt.Length][];
        for (int t = 0; t < prompt.Length; t++) single.Append(prompt.AsSpan(t, 1), perPosition[t] = new float[v]);

        int differing = 0;
        using (var whole = model.CreateSession(64))
        {
            var logits = new float[v];
            whole.Append(prompt, logits);
            differing += BitDifferences(logits, perPosition[^1]);
        }
        using (var chunked = model.CreateSession(64))
        {
            var logits = new float[v];
            for (int c = 0, pos = 0; c < chunks.Length; pos += chunks[c], c++)
            {
                chunked.Append(prompt.AsSpan(pos, chunks[c]), logits);
                differing += BitDifferences(logits, perPosition[ends[c] - 1]);
            }
        }

        // Resume: the original session decodes 4 tokens; a fresh one gets prompt + those tokens prefilled at once,
        // then both decode the same next tokens.
        var generated = Ids(8, 3, v);
        var original = new float[v];
        foreach (int token in generated.Take(4)) single.Append([token], original);
        using var resumed = model.CreateSession(64);
        var again = new float[v];
        resumed.Append(prompt.Concat(generated.Take(4)).ToArray(), again);
        differing += BitDifferences(original, again);
        foreach (int token in generated.Skip(4))
        {
            single.Append([token], original);
            resumed.Append([token], again);
            differing += BitDifferences(original, again);
        }
        output.WriteLine($"invariant={invariant}: {differing} logits differ in their bits");
        if (invariant) Assert.Equal(0, differing);
        else Assert.True(differing > 0, "the torch path was expected to differ in the last bits; the check would not notice a regression");
    }

    [Fact]
    public void APromptLongerThanOneCallsRowsIsRunInPiecesWithTheSameBits()
    {
        string dir = TinyHfModels.SaveInNewDir(TinyHfModels.Tiny(maxPos: 400), "invariant-long");
        using var model = LlamaInferenceModel.Load(dir, new InferenceOptions { Threads = 1 });
        var prompt = Ids(300, 6, model.VocabSize);   // more than RowForward.MaxRows (256)
        using var whole = model.CreateSession(400);
        using var single = model.CreateSession(400);
        var a = new float[model.VocabSize];
        var b = new float[model.VocabSize];
        whole.Append(prompt, a);
        foreach (int token in prompt) single.Append([token], b);
        Assert.Equal(300, whole.Length);
        Assert.Equal(0, BitDifferences(a, b));
    }

    [Fact]
    public void OneThreadAndTwoThreadsGetTheSameBits()
    {
        string dir = TinyHfModels.SaveInNewDir(TinyHfModels.Tiny(), "invariant-threads");
        int before = TorchSharp.torch.get_num_threads();
        using var two = LlamaInferenceModel.Load(dir, new InferenceOptions { Threads = 2 });
        using var one = LlamaInferenceModel.Load(dir, new InferenceOptions { Threads = 1 });
        TorchSharp.torch.set_num_threads(before);
        var prompt = Ids(48, 5, one.VocabSize);   // 48 rows: the products are large enough to be split between threads
        using var a = one.CreateSession(64);
        using var b = two.CreateSession(64);
        var x = new float[one.VocabSize];
        var y = new float[one.VocabSize];
        a.Append(prompt, x);
        b.Append(prompt, y);
        Assert.Equal(0, BitDifferences(x, y));
    }

    [Fact]
    public void TheRowPathAgreesWithTheTrainingModuleOnSizesThatAreNoMultipleOfTheLanes()
    {
        var config = Config(oddSizes: true);
        string dir = TinyHfModels.SaveInNewDir(config, "invariant-odd");
        using var module = LlamaForCausalLM.FromPretrained(dir);
        using var model = LlamaInferenceModel.Load(dir, new InferenceOptions { Threads = 1 });
        Assert.True(model.BatchInvariant);
        var ids = Ids(20, 4, config.VocabSize);
        using var s = model.CreateSession(32);
        var logits = new float[model.VocabSize];
        s.Append(ids, logits);
        using var _ = TorchSharp.torch.no_grad();
        using var x = TorchSharp.torch.tensor(ids.Select(i => (long)i).ToArray()).reshape(1, ids.Length);
        using var full = module.call(x);
        var expected = full[0, ids.Length - 1].data<float>().ToArray();
        float worst = logits.Zip(expected, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst < 1e-4, $"max |Δlogit| {worst}");
    }
}
