using System.Runtime.CompilerServices;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Runtime;
using TorchSharp;

namespace ProxyOrleans.Inference.Tests;

/// <summary>Tiny seeded random-weight Llama models saved as real HF directories.</summary>
internal static class TestModels
{
    [ModuleInitializer]
    internal static void Init() => TorchRuntime.EnsureLoaded();

    /// <summary>GQA (4 query heads on 2 kv heads), untied head, 2 layers.</summary>
    public static LlamaConfig Tiny(bool tied = false, int kvHeads = 2, bool bias = false, int maxPos = 128) => new()
    {
        HiddenSize = 64, IntermediateSize = 96, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = kvHeads,
        HeadDim = 16, VocabSize = 300, MaxPositionEmbeddings = maxPos, RmsNormEps = 1e-5, RopeTheta = 10000,
        TieWordEmbeddings = tied, AttentionBias = bias, ModelType = bias ? "qwen2" : "llama", BosTokenId = 1, EosTokenIds = [2],
    };

    public static string NewDir(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), "proxyorleans-tests", name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Creates a seeded random model, saves it (config.json + model.safetensors) and returns the directory.</summary>
    public static string Save(LlamaConfig config, string name, int seed = 1234)
    {
        torch.manual_seed(seed);
        using var m = new LlamaForCausalLM(config);
        // Norm weights away from 1 so that folding them into matrices is actually exercised.
        using (torch.no_grad())
            foreach (var (n, p) in m.named_parameters())
                if (n.EndsWith("norm.weight")) p.uniform_(0.5, 1.5);
                else if (n.EndsWith(".bias")) p.normal_(0, 0.05);
                else p.normal_(0, 0.08);
        string dir = NewDir(name);
        m.SavePretrained(dir);
        return dir;
    }
}
