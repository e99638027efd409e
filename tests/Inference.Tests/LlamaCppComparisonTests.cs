using LLama;
using LLama.Common;
using LLama.Native;
using ProxyOrleans.Inference.Checkpoints;
using ProxyOrleans.Inference.Models;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Inference.Tests;

/// <summary>
/// Our forward pass against an independent implementation, llama.cpp (LLamaSharp 0.30.0), on the same
/// F32 weights exported to GGUF. llama.cpp runs with an F32 KV cache and flash attention off, where it
/// agrees with an exact forward to ~1e-6 (docs/model.md, Checks); its defaults are not a tight reference.
/// </summary>
public class LlamaCppComparisonTests(ITestOutputHelper output)
{
    /// <summary>Per-position logits [T][V] from llama.cpp, all positions decoded in one batch.</summary>
    internal static float[][] LlamaCppLogits(string gguf, int[] ids)
    {
        NativeLogConfig.llama_log_set((_, _) => { });
        var p = new ModelParams(gguf)
        {
            ContextSize = 128, BatchSize = 128, UBatchSize = 128, Threads = 1, BatchThreads = 1, GpuLayerCount = 0,
            FlashAttention = false, TypeK = GGMLType.GGML_TYPE_F32, TypeV = GGMLType.GGML_TYPE_F32,
        };
        using var weights = LLamaWeights.LoadFromFile(p);
        using var ctx = weights.CreateContext(p);
        var batch = new LLamaBatch();
        for (int i = 0; i < ids.Length; i++) batch.Add(ids[i], i, LLamaSeqId.Zero, true);
        var rc = ctx.Decode(batch);
        Assert.Equal(DecodeResult.Ok, rc);
        return Enumerable.Range(0, ids.Length).Select(i => ctx.NativeHandle.GetLogitsIth(i).ToArray()).ToArray();
    }

    private static float[][] OurLogits(string dir, int[] ids, bool invariant)
    {
        using var model = LlamaInferenceModel.Load(dir, new InferenceOptions { Threads = 1, BatchInvariant = invariant });
        using var s = model.CreateSession(ids.Length);
        var result = new float[ids.Length][];
        for (int t = 0; t < ids.Length; t++)
        {
            result[t] = new float[model.VocabSize];
            s.Append(ids.AsSpan(t, 1), result[t]);
        }
        return result;
    }

    private static (float maxDiff, int argmaxMismatches) Compare(float[][] a, float[][] b)
    {
        float max = 0; int mismatches = 0;
        for (int t = 0; t < a.Length; t++)
        {
            for (int i = 0; i < a[t].Length; i++) max = Math.Max(max, Math.Abs(a[t][i] - b[t][i]));
            if (Array.IndexOf(a[t], a[t].Max()) != Array.IndexOf(b[t], b[t].Max())) mismatches++;
        }
        return (max, mismatches);
    }

    [Theory]
    [InlineData(false, 2, true)]  // GQA (4 query heads on 2 kv heads), untied head, batch-invariant row path
    [InlineData(true, 1, true)]   // MQA, tied head
    [InlineData(false, 2, false)] // the same on the torch path (DecodeRow)
    [InlineData(true, 1, false)]
    public void LogitsMatchLlamaCppOn64Tokens(bool tied, int kvHeads, bool invariant)
    {
        var config = TinyHfModels.Tiny(tied, kvHeads) with { RopeTheta = 500000, IntermediateSize = 80 };
        Assert.NotEqual(config.NumAttentionHeads, config.NumKeyValueHeads);
        string dir = TinyHfModels.SaveInNewDir(config, "llamacpp");
        var ids = Enumerable.Range(0, 64).Select(i => (i * 37 + 11) % config.VocabSize).ToArray();
        string gguf = Path.Combine(dir, "model-f32.gguf");
        GgufExport.Export(dir, gguf);

        var ours = OurLogits(dir, ids, invariant);
        var theirs = LlamaCppLogits(gguf, ids);
        var (maxDiff, mismatches) = Compare(ours, theirs);
        output.WriteLine($"max |Δlogit| over 64 positions x {config.VocabSize}: {maxDiff:E3}; argmax mismatches: {mismatches}");
        Assert.True(maxDiff <= 1e-3, $"max |Δlogit| {maxDiff} > 1e-3");
        Assert.Equal(0, mismatches);

        // The same check must catch a RoPE layout mistake: a GGUF without the q/k permutation differs.
        if (tied) return;
        string wrong = Path.Combine(dir, "model-f32-unpermuted.gguf");
        GgufExport.Export(dir, wrong, permuteQk: false);
        var (wrongDiff, _) = Compare(ours, LlamaCppLogits(wrong, ids));
        output.WriteLine($"without the q/k permutation: max |Δlogit| {wrongDiff:E3}");
        Assert.True(wrongDiff > 0.05, $"unpermuted export should disagree, got {wrongDiff}");
    }
}
