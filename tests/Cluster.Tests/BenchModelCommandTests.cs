using System.Globalization;
using ProxyOrleans.Client.Commands;
using ProxyOrleans.Inference.Models;
using TorchSharp;
using Xunit;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>`proxyorleans bench model` on a tiny model: both of our engines and llama.cpp run, and the key=value line
/// carries the batch-invariant, fast and batched-decode figures.</summary>
public class BenchModelCommandTests
{
    [Fact]
    public void Reports_the_invariant_and_fast_engines_and_batched_decode_next_to_llamacpp()
    {
        string dir = Path.Combine(Path.GetTempPath(), "proxyorleans-tests", "bench-model-" + Guid.NewGuid().ToString("N")[..8]);
        torch.manual_seed(5);
        using (var m = new LlamaForCausalLM(new LlamaConfig
        {
            HiddenSize = 64, IntermediateSize = 96, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2, HeadDim = 16,
            VocabSize = 300, MaxPositionEmbeddings = 128, RmsNormEps = 1e-5, BosTokenId = 1, EosTokenIds = [2],
        }))
            m.SavePretrained(dir);
        var output = new StringWriter();
        Assert.Equal(0, BenchModelCommand.Run(dir, threads: 1, promptLength: 8, decodeSteps: 8, reps: 1, output));
        string last = output.ToString().TrimEnd().Split('\n')[^1];
        var keys = last.Split(' ').Select(kv => kv.Split('=')).ToDictionary(kv => kv[0], kv => kv[1]);
        foreach (var key in new[] { "decode_ratio", "prefill_ratio", "fast_decode_ratio", "fast_prefill_ratio", "invariant_decode_speed",
                     "invariant_prefill_speed", "ours_batch8_tok_s", "llamacpp_batch8_tok_s", "batch8_ratio_vs_llamacpp" })
            Assert.True(double.Parse(keys[key], CultureInfo.InvariantCulture) > 0, $"{key} in: {last}");
        Assert.True(double.Parse(keys["max_abs_logit_diff"], CultureInfo.InvariantCulture) < 1e-3, last);
    }
}
