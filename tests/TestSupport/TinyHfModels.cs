using System.Text;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Runtime;
using ProxyOrleans.Inference.Tokenization;
using TorchSharp;

namespace ProxyOrleans.TestSupport;

/// <summary>
/// The one tiny-model factory of the test projects: seeded random-weight Llama checkpoints written as real HF
/// directories (config, weights, and a tokenizer: a small byte-level BPE, or the Llama-2 SentencePiece model of
/// ../shared/data). Each project's fixtures (Cluster.Tests' TinyTrio, Gateway.Tests' TinyModels, Deploy.Tests'
/// TinyModel, Inference.Tests' TinyFamily) choose their models through it.
/// </summary>
public static class TinyHfModels
{
    // libtorch before the first tensor (the test projects also load it at start, in their AssemblySetup).
    static TinyHfModels() => TorchRuntime.EnsureLoaded();

    /// <summary>GQA (4 query heads on 2 kv heads), untied head, 2 layers, hidden 64.</summary>
    public static LlamaConfig Config(int vocabSize, int maxPos, int bosId, int eosId, int intermediateSize = 96) => new()
    {
        HiddenSize = 64, IntermediateSize = intermediateSize, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
        HeadDim = 16, VocabSize = vocabSize, MaxPositionEmbeddings = maxPos, RmsNormEps = 1e-5, RopeTheta = 10000,
        TieWordEmbeddings = false, ModelType = "llama", BosTokenId = bosId, EosTokenIds = [eosId],
    };

    /// <summary>
    /// The inference tests' model: the same shape on a 300-token vocabulary (BOS 1, EOS 2), optionally with a tied
    /// head, fewer kv heads, or Qwen2's attention biases.
    /// </summary>
    public static LlamaConfig Tiny(bool tied = false, int kvHeads = 2, bool bias = false, int maxPos = 128) =>
        Config(vocabSize: 300, maxPos: maxPos, bosId: 1, eosId: 2) with
        {
            NumKeyValueHeads = kvHeads, TieWordEmbeddings = tied, AttentionBias = bias, ModelType = bias ? "qwen2" : "llama",
        };

    /// <summary>A new empty folder under the temp directory, named after <paramref name="name"/> and unique.</summary>
    public static string NewDir(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), "proxyorleans-tests", name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>
    /// Seeded random weights in a new folder (<see cref="NewDir"/>): norms from [0.5, 1.5), biases from N(0, 0.05), the
    /// rest from N(0, 0.08); returns the folder.
    /// </summary>
    public static string SaveInNewDir(LlamaConfig config, string name, int seed = 1234) =>
        SaveWeights(config, NewDir(name), seed, std: 0.08, biasStd: 0.05);

    /// <summary>
    /// Seeded random weights saved into <paramref name="dir"/> (config.json + model.safetensors). With a
    /// <paramref name="std"/>, norm weights are drawn from [0.5, 1.5) (so folding them is exercised), biases from
    /// N(0, <paramref name="biasStd"/>) when given, and the rest from N(0, std); without one, the module's own
    /// initialisation.
    /// </summary>
    public static string SaveWeights(LlamaConfig config, string dir, int seed, double? std, double? biasStd = null)
    {
        Directory.CreateDirectory(dir);
        torch.manual_seed(seed);
        using var m = new LlamaForCausalLM(config);
        if (std is double s)
            using (torch.no_grad())
                foreach (var (n, p) in m.named_parameters())
                    if (n.EndsWith("norm.weight")) p.uniform_(0.5, 1.5);
                    else if (biasStd is double b && n.EndsWith(".bias")) p.normal_(0, b);
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
