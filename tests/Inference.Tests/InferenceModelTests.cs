using ProxyOrleans.Inference.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ProxyOrleans.Inference.Tests;

public class InferenceModelTests
{
    private static int[] Ids(int n, int seed, int vocab = 300)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => rng.Next(vocab)).ToArray();
    }

    /// <summary>Full-sequence logits [T, V] from the training module (no cache, SDPA causal).</summary>
    private static float[][] FullForward(string dir, int[] ids)
    {
        using var m = LlamaForCausalLM.FromPretrained(dir);
        using var _ = no_grad();
        using var x = tensor(ids.Select(i => (long)i).ToArray()).reshape(1, ids.Length);
        using var logits = m.call(x)[0];
        return Enumerable.Range(0, ids.Length).Select(t => logits[t].data<float>().ToArray()).ToArray();
    }

    private static float MaxDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        float d = 0;
        for (int i = 0; i < a.Length; i++) d = Math.Max(d, Math.Abs(a[i] - b[i]));
        return d;
    }

    [Theory]
    [InlineData(false, 2, false, 1, true)]   // GQA, untied head, batch-invariant row path
    [InlineData(true, 4, true, 1, true)]     // MHA, tied head, Qwen2-style q/k/v bias
    [InlineData(false, 1, false, 2, true)]   // MQA, 2 threads
    [InlineData(false, 2, false, 1, false)]  // the same on the torch path (DecodeRow)
    [InlineData(true, 4, true, 1, false)]
    [InlineData(false, 1, false, 2, false)]  // MQA, 2 threads: chunked bmm weights
    public void CachedDecodingEqualsFullRecomputation(bool tied, int kvHeads, bool bias, int threads, bool invariant)
    {
        var config = TinyHfModels.Tiny(tied, kvHeads, bias);
        string dir = TinyHfModels.SaveInNewDir(config, "cached");
        var ids = Ids(80, 1); // crosses the first cache growth (64)
        var full = FullForward(dir, ids);
        int before = torch.get_num_threads();
        using var model = LlamaInferenceModel.Load(dir, new InferenceOptions { Threads = threads, BatchInvariant = invariant });
        torch.set_num_threads(before);
        Assert.Equal(invariant, model.BatchInvariant);
        Assert.Equal(300, model.VocabSize);
        Assert.Equal(2L * 2 * kvHeads * 16 * 4, model.KvBytesPerToken);
        using var s = model.CreateSession(128);
        var logits = new float[model.VocabSize];
        float worst = 0;
        for (int t = 0; t < ids.Length; t++)
        {
            s.Append(ids.AsSpan(t, 1), logits);
            worst = Math.Max(worst, MaxDiff(logits, full[t]));
        }
        Assert.Equal(80, s.Length);
        Assert.True(worst < 1e-4, $"max |Δlogit| {worst}");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ChunkedPrefillEqualsTokenByToken(bool invariant)
    {
        string dir = TinyHfModels.SaveInNewDir(TinyHfModels.Tiny(), "chunked");
        var ids = Ids(40, 2);
        var full = FullForward(dir, ids);
        using var model = LlamaInferenceModel.Load(dir, new InferenceOptions { BatchInvariant = invariant });
        using var chunked = model.CreateSession(64);
        using var single = model.CreateSession(64);
        var a = new float[model.VocabSize];
        var b = new float[model.VocabSize];
        int pos = 0;
        foreach (int len in new[] { 7, 1, 12, 3, 17 })
        {
            chunked.Append(ids.AsSpan(pos, len), a);
            for (int t = pos; t < pos + len; t++) single.Append(ids.AsSpan(t, 1), b);
            pos += len;
            Assert.Equal(pos, chunked.Length);
            Assert.True(MaxDiff(a, b) < 1e-4, $"chunk ending at {pos}: {MaxDiff(a, b)}");
            Assert.True(MaxDiff(a, full[pos - 1]) < 1e-4, $"chunk ending at {pos} vs full: {MaxDiff(a, full[pos - 1])}");
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void StepBatchEqualsIndividualSteps(bool invariant)
    {
        string dir = TinyHfModels.SaveInNewDir(TinyHfModels.Tiny(), "batch");
        using var model = LlamaInferenceModel.Load(dir, new InferenceOptions { BatchInvariant = invariant });
        int[] promptLengths = [3, 9, 1];
        var prompts = promptLengths.Select((n, i) => Ids(n, 10 + i)).ToArray();
        var batched = prompts.Select(_ => model.CreateSession(32)).ToArray();
        var alone = prompts.Select(_ => model.CreateSession(32)).ToArray();
        var v = model.VocabSize;
        var scratch = new float[v];
        for (int i = 0; i < prompts.Length; i++) { batched[i].Append(prompts[i], scratch); alone[i].Append(prompts[i], scratch); }

        var logits = new float[prompts.Length * v];
        var one = new float[v];
        for (int step = 0; step < 6; step++)
        {
            var tokens = Ids(prompts.Length, 100 + step);
            model.StepBatch(batched, tokens, logits);
            for (int i = 0; i < prompts.Length; i++)
            {
                alone[i].Append(tokens.AsSpan(i, 1), one);
                Assert.True(MaxDiff(logits.AsSpan(i * v, v), one) < 1e-5, $"step {step} session {i}");
                Assert.Equal(alone[i].Length, batched[i].Length);
            }
        }
        Assert.Throws<ArgumentException>(() => model.StepBatch([batched[0], batched[0]], [1, 2], new float[2 * v]));
        foreach (var s in batched.Concat(alone)) s.Dispose();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ContextOverflowIsRefusedAndLeavesTheSessionUsable(bool invariant)
    {
        string dir = TinyHfModels.SaveInNewDir(TinyHfModels.Tiny(maxPos: 16), "overflow");
        using var model = LlamaInferenceModel.Load(dir, new InferenceOptions { Name = "tiny", BatchInvariant = invariant });
        Assert.Equal("tiny", model.Name);
        Assert.Equal(16, model.MaxSequenceLength);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.CreateSession(17));
        using var s = model.CreateSession(16);
        var logits = new float[model.VocabSize];
        s.Append(Ids(10, 3), logits);
        var e = Assert.Throws<ContextLengthExceededException>(() => s.Append(Ids(7, 4), logits));
        Assert.Contains("holds 10 tokens and 7 more would exceed its capacity of 16", e.Message);
        Assert.Contains("'tiny'", e.Message);
        Assert.Equal(10, s.Length);
        s.Append(Ids(6, 4), logits);
        Assert.Equal(16, s.Length);
        Assert.Throws<ContextLengthExceededException>(() => model.StepBatch([s], [5], logits));
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Append([300], logits));
        using var fresh = model.CreateSession(16);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.StepBatch([fresh], [-1], logits));
        Assert.Equal(0, fresh.Length);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void InferenceCopyOfATrainingModuleAgreesWithIt(bool invariant)
    {
        torch.manual_seed(3);
        using var m = new LlamaForCausalLM(TinyHfModels.Tiny());
        using var model = LlamaInferenceModel.FromModule(m, new InferenceOptions { BatchInvariant = invariant });
        var ids = Ids(12, 5);
        using var s = model.CreateSession(12);
        var logits = new float[model.VocabSize];
        s.Append(ids, logits);
        using var _ = no_grad();
        using var x = tensor(ids.Select(i => (long)i).ToArray()).reshape(1, 12);
        using var full = m.call(x);
        Assert.True(MaxDiff(logits, full[0, 11].data<float>().ToArray()) < 1e-4);
    }

    [Fact]
    public void UnavailableOrUnknownDeviceIsAClearError()
    {
        string dir = TinyHfModels.SaveInNewDir(TinyHfModels.Tiny(), "device");
        var e = Assert.Throws<ArgumentException>(() => LlamaInferenceModel.Load(dir, new InferenceOptions { Device = "tpu" }));
        Assert.Contains("not one of cpu, cuda, cuda:N", e.Message);
        if (!torch.cuda.is_available())
            Assert.Contains("-p:TorchBackend=cuda", Assert.Throws<NotSupportedException>(
                () => LlamaInferenceModel.Load(dir, new InferenceOptions { Device = "cuda:0" })).Message);
    }
}
