using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Tokenization;
using ProxyOrleans.TestSupport;

namespace ProxyOrleans.Deploy.Tests;

/// <summary>A tiny seeded random-weight Llama with a byte-level tokenizer, saved as a real HF directory.</summary>
public static class TinyModel
{
    public const int VocabSize = 300;

    public static string Save(string dir, int seed = 7)
    {
        // Tokenizer: the 256 byte symbols, then <s> = 256, </s> = 257.
        var (ids, _) = TinyHfModels.WriteByteLevelTokenizer(dir, [], ["<s>", "</s>"],
            new ByteLevelBpeFileOptions { BosToken = "<s>", EosToken = "</s>", AddBosToken = true });
        var config = new LlamaConfig
        {
            HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2, NumKeyValueHeads = 1,
            HeadDim = 16, VocabSize = VocabSize, MaxPositionEmbeddings = 128, RmsNormEps = 1e-5,
            BosTokenId = ids["<s>"], EosTokenIds = [ids["</s>"]],
        };
        return TinyHfModels.SaveWeights(config, dir, seed, std: null);
    }
}
