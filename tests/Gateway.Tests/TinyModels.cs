using ProxyOrleans.Inference.Models;
using ProxyOrleans.TestSupport;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Gateway.Tests;

/// <summary>
/// A tiny base / expert / anti-expert trio as HF directories: seeded random weights (tests/Shared's TinyHfModels,
/// linked into this project) and a small real byte-level BPE tokenizer (the tokenizers' writer); the expert gets
/// a ChatML template, as a tuned model would.
/// </summary>
internal static class TinyModels
{
    public sealed record Trio(string Base, string Expert, string Anti);

    static readonly string[] Specials = ["<s>", "</s>", "<|im_start|>", "<|im_end|>"];

    public static Trio CreateTrio(string root, int context)
    {
        string[] merges = ["t|h", "th|e", "e| ", " |t", "i|n", "a|n", "e|r", "o|n", "r|e", "o|u", "a|t", "e|n", "l|l", "s|t", " |a", " |s"];
        string Make(string name, int seed, bool chat)
        {
            var target = Path.Combine(root, name);
            var (ids, vocabSize) = TinyHfModels.WriteByteLevelTokenizer(target, merges, Specials, new ByteLevelBpeFileOptions
            {
                BosToken = "<s>", EosToken = "</s>", AddBosToken = true,
                ChatTemplate = chat ? ChatTemplates.ChatMlJinja : null, ModelMaxLength = context,
            });
            TinyHfModels.SaveWeights(TinyHfModels.Config(vocabSize, context, ids["<s>"], ids["</s>"]), target, seed, std: 0.08);
            PreferPrintableText(target, ids["</s>"]);
            return target;
        }
        return new Trio(Make("base-tiny", 11, false), Make("expert-tiny", 22, true), Make("anti-tiny", 33, false));
    }

    /// <summary>
    /// Random weights mostly pick bytes ≥ 0x80, which never form valid UTF-8 and stream as nothing until the end.
    /// Zeroing the head rows of non-printable bytes and of EOS (their logit becomes 0 while printable tokens
    /// spread around it) keeps the text readable, streamed token by token, and running to max_tokens.
    /// </summary>
    static void PreferPrintableText(string dir, int eosId)
    {
        var file = Path.Combine(dir, "model.safetensors");
        var tensors = ProxyOrleans.Inference.Checkpoints.Safetensors.Load(file);
        var head = tensors["lm_head.weight"];
        using (TorchSharp.torch.no_grad())
            for (long id = 0; id < 256; id++)
                if (id >= 0x7F || (id < 0x20 && id != '\n')) head[id].zero_();
        head[eosId].zero_();
        ProxyOrleans.Inference.Checkpoints.Safetensors.Save(file, tensors);
        foreach (var t in tensors.Values) t.Dispose();
    }
}
