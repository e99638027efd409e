using System.Runtime.CompilerServices;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Runtime;
using ProxyOrleans.Inference.Tokenization;
using TorchSharp;

namespace ProxyOrleans.Deploy.Tests;

/// <summary>A tiny seeded random-weight Llama with a byte-level tokenizer, saved as a real HF directory.</summary>
public static class TinyModel
{
    [ModuleInitializer]
    internal static void Init() => TorchRuntime.EnsureLoaded();

    public const int VocabSize = 300;

    public static string Save(string dir, int seed = 7)
    {
        Directory.CreateDirectory(dir);
        // Tokenizer: the 256 byte symbols, then <s> = 256, </s> = 257.
        var (vocab, merges) = ByteLevelBpeTokenizerFile.FromByteMerges([]);
        var ids = ByteLevelBpeTokenizerFile.Write(dir, vocab, merges, ["<s>", "</s>"],
            new ByteLevelBpeFileOptions { BosToken = "<s>", EosToken = "</s>", AddBosToken = true });
        var config = new LlamaConfig
        {
            HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2, NumKeyValueHeads = 1,
            HeadDim = 16, VocabSize = VocabSize, MaxPositionEmbeddings = 128, RmsNormEps = 1e-5,
            BosTokenId = ids["<s>"], EosTokenIds = [ids["</s>"]],
        };
        torch.manual_seed(seed);
        using var model = new LlamaForCausalLM(config);
        model.SavePretrained(dir);
        return dir;
    }
}
