using System.Text;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Tests;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Gateway.Tests;

/// <summary>
/// A tiny base / expert / anti-expert trio as HF directories: seeded random weights (Inference.Tests' TestModels,
/// linked into this project) and a small real byte-level BPE tokenizer (the tokenizers' writer); the expert gets
/// a ChatML template, as a tuned model would.
/// </summary>
internal static class TinyModels
{
    public sealed record Trio(string Base, string Expert, string Anti);

    static readonly string[] Specials = ["<s>", "</s>", "<|im_start|>", "<|im_end|>"];

    public static Trio CreateTrio(string root, int context)
    {
        var (vocab, merges) = ByteLevelBpeTokenizerFile.FromByteMerges(
            new[] { "t|h", "th|e", "e| ", " |t", "i|n", "a|n", "e|r", "o|n", "r|e", "o|u", "a|t", "e|n", "l|l", "s|t", " |a", " |s" }
                .Select(p => p.Split('|')).Select(p => (Encoding.UTF8.GetBytes(p[0]), Encoding.UTF8.GetBytes(p[1]))));
        var vocabSize = vocab.Count + Specials.Length;
        string Make(string name, int seed, bool chat)
        {
            var config = TestModels.Tiny(maxPos: context) with { VocabSize = vocabSize, BosTokenId = vocab.Count, EosTokenIds = [vocab.Count + 1] };
            var dir = TestModels.Save(config, name, seed);
            PreferPrintableText(dir, vocab.Count + 1);
            var target = Path.Combine(root, name);
            Directory.Move(dir, target);
            ByteLevelBpeTokenizerFile.Write(target, vocab, merges, Specials, new ByteLevelBpeFileOptions
            {
                BosToken = "<s>", EosToken = "</s>", AddBosToken = true,
                ChatTemplate = chat ? ChatTemplates.ChatMlJinja : null, ModelMaxLength = context,
            });
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
