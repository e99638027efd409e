using System.Runtime.CompilerServices;
using System.Text;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Runtime;
using ProxyOrleans.Inference.Tokenization;
using TorchSharp;

namespace ProxyOrleans.TestSupport;

/// <summary>
/// Tiny seeded random-weight Llama checkpoints written as real HF directories, for the test projects that run
/// silos, gateways and pods (Cluster.Tests, Gateway.Tests, Deploy.Tests link this file): config, weights, and a
/// tokenizer (a small byte-level BPE, or the Llama-2 SentencePiece model of ../shared/data).
/// </summary>
public static class TinyHfModels
{
    [ModuleInitializer]
    internal static void Init() => TorchRuntime.EnsureLoaded();

    /// <summary>GQA (4 query heads on 2 kv heads), untied head, 2 layers, hidden 64.</summary>
    public static LlamaConfig Config(int vocabSize, int maxPos, int bosId, int eosId, int intermediateSize = 96) => new()
    {
        HiddenSize = 64, IntermediateSize = intermediateSize, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
        HeadDim = 16, VocabSize = vocabSize, MaxPositionEmbeddings = maxPos, RmsNormEps = 1e-5, RopeTheta = 10000,
        TieWordEmbeddings = false, ModelType = "llama", BosTokenId = bosId, EosTokenIds = [eosId],
    };

    /// <summary>
    /// Seeded random weights saved into <paramref name="dir"/> (config.json + model.safetensors). With a
    /// <paramref name="std"/>, norm weights are drawn from [0.5, 1.5) (so folding them is exercised) and the rest from
    /// N(0, std); without one, the module's own initialisation.
    /// </summary>
    public static string SaveWeights(LlamaConfig config, string dir, int seed, double? std)
    {
        Directory.CreateDirectory(dir);
        torch.manual_seed(seed);
        using var m = new LlamaForCausalLM(config);
        if (std is double s)
            using (torch.no_grad())
                foreach (var (n, p) in m.named_parameters())
                    if (n.EndsWith("norm.weight")) p.uniform_(0.5, 1.5);
                    else p.normal_(0, s);
        m.SavePretrained(dir);
        return dir;
    }

    /// <summary>
    /// A byte-level BPE tokenizer (ids 0..255 the bytes, then one id per merge "left|right", then the special tokens)
    /// written as tokenizer.json + tokenizer_config.json; returns the special tokens' ids and the vocabulary size.
    /// </summary>
    public static (IReadOnlyDictionary<string, int> SpecialIds, int VocabSize) WriteByteLevelTokenizer(string dir, IEnumerable<string> merges,
        IReadOnlyList<string> specials, ByteLevelBpeFileOptions options)
    {
        var (vocab, m) = ByteLevelBpeTokenizerFile.FromByteMerges(
            merges.Select(p => p.Split('|')).Select(p => (Encoding.UTF8.GetBytes(p[0]), Encoding.UTF8.GetBytes(p[1]))));
        Directory.CreateDirectory(dir);
        var ids = ByteLevelBpeTokenizerFile.Write(dir, vocab, m, specials, options);
        return (ids, Math.Max(vocab.Count, ids.Count == 0 ? 0 : ids.Values.Max() + 1));
    }

    /// <summary>
    /// The Llama-2 SentencePiece tokenizer (32000 tokens, BOS 1, EOS 2), with an optional chat template and special
    /// tokens added after it (ids 32000, 32001, ..., as a tuned model's pad or chat tokens).
    /// </summary>
    public static void WriteLlama2Tokenizer(string dir, string? chatTemplateJson = null, IReadOnlyList<string>? addedTokens = null)
    {
        Directory.CreateDirectory(dir);
        File.Copy(TestEnvironment.SharedData("llama2-tokenizer", "tokenizer.model"), Path.Combine(dir, "tokenizer.model"), overwrite: true);
        var added = addedTokens is { Count: > 0 }
            ? ", \"added_tokens_decoder\": {" + string.Join(", ", addedTokens.Select((t, i) => $"\"{32000 + i}\": {{\"content\": \"{t}\", \"special\": true}}")) + "}"
            : "";
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"),
            "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"add_bos_token\": true" +
            (chatTemplateJson is null ? "" : ", \"chat_template\": " + chatTemplateJson) + added + "}");
    }
}
