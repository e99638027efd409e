using System.Text;
using ProxyOrleans.Inference.Models;
using static TorchSharp.torch;

namespace ProxyOrleans.Inference.Checkpoints;

/// <summary>
/// Writes a HF Llama checkpoint as an F32 GGUF v3 file that llama.cpp loads (architecture "llama"), so that an
/// independent implementation can check our forward pass on the same weights. GGUF llama tensors use the
/// interleaved RoPE layout (Meta's), HF the rotate_half one: q/k rows are permuted as convert_hf_to_gguf.py does.
/// The vocabulary is synthetic (ids only matter here): &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;, byte tokens, then placeholders.
/// </summary>
public static class GgufExport
{
    private const int Alignment = 32;
    private enum T : uint { U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9 }

    /// <param name="permuteQk">Only for checking that the comparison catches a wrong RoPE layout: false writes q/k unpermuted.</param>
    public static void Export(string modelDir, string ggufPath, bool permuteQk = true)
    {
        var c = LlamaConfig.Load(modelDir);
        if (c.RopeScaling is not null || c.AttentionBias)
            throw new NotSupportedException($"GGUF export covers plain Llama configs; '{modelDir}' has rope_scaling or attention bias.");
        var entries = Safetensors.ReadDirectory(modelDir);
        var shapes = LlamaCheckpointKeys.Shapes(c);
        HfCheckpoint.Check(modelDir, entries, shapes, LlamaCheckpointKeys.Optional(c));

        // GGUF name -> HF name, in llama.cpp's order.
        var tensors = new List<(string Gguf, string Hf)> { ("token_embd.weight", LlamaCheckpointKeys.Embedding) };
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            var k = new LlamaCheckpointKeys.Layer(l);
            string b = $"blk.{l}.";
            tensors.Add((b + "attn_norm.weight", k.InputNorm));
            tensors.Add((b + "attn_q.weight", k.Q));
            tensors.Add((b + "attn_k.weight", k.K));
            tensors.Add((b + "attn_v.weight", k.V));
            tensors.Add((b + "attn_output.weight", k.O));
            tensors.Add((b + "ffn_norm.weight", k.PostAttentionNorm));
            tensors.Add((b + "ffn_gate.weight", k.Gate));
            tensors.Add((b + "ffn_up.weight", k.Up));
            tensors.Add((b + "ffn_down.weight", k.Down));
        }
        tensors.Add(("output_norm.weight", LlamaCheckpointKeys.FinalNorm));
        if (!c.TieWordEmbeddings) tensors.Add(("output.weight", LlamaCheckpointKeys.LmHead));

        using var f = new BinaryWriter(File.Create(ggufPath));
        f.Write(Encoding.ASCII.GetBytes("GGUF"));
        f.Write(3u);
        f.Write((ulong)tensors.Count);
        var kv = new List<Action>();
        void Kv(string key, T type, Action value) => kv.Add(() => { Str(f, key); f.Write((uint)type); value(); });
        Kv("general.architecture", T.String, () => Str(f, "llama"));
        Kv("general.name", T.String, () => Str(f, new DirectoryInfo(modelDir).Name));
        Kv("general.file_type", T.U32, () => f.Write(0u)); // all F32
        Kv("general.alignment", T.U32, () => f.Write((uint)Alignment));
        Kv("llama.context_length", T.U32, () => f.Write((uint)c.MaxPositionEmbeddings));
        Kv("llama.embedding_length", T.U32, () => f.Write((uint)c.HiddenSize));
        Kv("llama.block_count", T.U32, () => f.Write((uint)c.NumHiddenLayers));
        Kv("llama.feed_forward_length", T.U32, () => f.Write((uint)c.IntermediateSize));
        Kv("llama.attention.head_count", T.U32, () => f.Write((uint)c.NumAttentionHeads));
        Kv("llama.attention.head_count_kv", T.U32, () => f.Write((uint)c.NumKeyValueHeads));
        Kv("llama.attention.key_length", T.U32, () => f.Write((uint)c.HeadDim));
        Kv("llama.attention.value_length", T.U32, () => f.Write((uint)c.HeadDim));
        Kv("llama.attention.layer_norm_rms_epsilon", T.F32, () => f.Write((float)c.RmsNormEps));
        Kv("llama.rope.freq_base", T.F32, () => f.Write((float)c.RopeTheta));
        Kv("llama.rope.dimension_count", T.U32, () => f.Write((uint)c.HeadDim));
        Kv("llama.vocab_size", T.U32, () => f.Write((uint)c.VocabSize));
        var (tokens, scores, types) = SyntheticVocabulary(c.VocabSize);
        Kv("tokenizer.ggml.model", T.String, () => Str(f, "llama"));
        Kv("tokenizer.ggml.tokens", T.Array, () => { f.Write((uint)T.String); f.Write((ulong)tokens.Length); foreach (var s in tokens) Str(f, s); });
        Kv("tokenizer.ggml.scores", T.Array, () => { f.Write((uint)T.F32); f.Write((ulong)scores.Length); foreach (var s in scores) f.Write(s); });
        Kv("tokenizer.ggml.token_type", T.Array, () => { f.Write((uint)T.I32); f.Write((ulong)types.Length); foreach (var s in types) f.Write(s); });
        Kv("tokenizer.ggml.unknown_token_id", T.U32, () => f.Write(0u));
        Kv("tokenizer.ggml.bos_token_id", T.U32, () => f.Write((uint)(c.BosTokenId ?? 1)));
        Kv("tokenizer.ggml.eos_token_id", T.U32, () => f.Write((uint)(c.EosTokenIds.Count > 0 ? c.EosTokenIds[0] : 2)));
        Kv("tokenizer.ggml.add_bos_token", T.Bool, () => f.Write(false));
        f.Write((ulong)kv.Count);
        foreach (var write in kv) write();

        ulong offset = 0;
        foreach (var (gguf, hf) in tensors)
        {
            var shape = entries[hf].Shape;
            Str(f, gguf);
            f.Write((uint)shape.Length);
            foreach (var d in shape.Reverse()) f.Write((ulong)d); // ggml lists dims innermost first
            f.Write(0u); // GGML_TYPE_F32
            f.Write(offset);
            offset += Align((ulong)shape.Aggregate(1L, (a, b) => a * b) * 4);
        }
        Pad(f);
        foreach (var (gguf, hf) in tensors)
        {
            using var t = Safetensors.ReadTensor(entries[hf]);
            using var scope = NewDisposeScope();
            var data = t;
            if (permuteQk && gguf.EndsWith("attn_q.weight")) data = PermuteForGguf(t, c.NumAttentionHeads);
            if (permuteQk && gguf.EndsWith("attn_k.weight")) data = PermuteForGguf(t, c.NumKeyValueHeads);
            f.Write(data.contiguous().bytes);
            Pad(f);
        }
    }

    /// <summary>rotate_half rows (per head: first halves, then second halves) -> interleaved pairs, as convert_hf_to_gguf.py's permute.</summary>
    public static Tensor PermuteForGguf(Tensor w, int heads)
    {
        long rows = w.shape[0], cols = w.shape[1];
        return w.reshape(heads, 2, rows / heads / 2, cols).transpose(1, 2).reshape(rows, cols);
    }

    private static (string[] tokens, float[] scores, int[] types) SyntheticVocabulary(int n)
    {
        var tokens = new string[n]; var scores = new float[n]; var types = new int[n];
        for (int i = 0; i < n; i++)
        {
            (tokens[i], types[i]) = i switch
            {
                0 => ("<unk>", 2),
                1 => ("<s>", 3),
                2 => ("</s>", 3),
                < 259 => ($"<0x{i - 3:X2}>", 6),
                _ => ($"▁t{i}", 1),
            };
            scores[i] = i < 259 ? 0 : -i;
        }
        return (tokens, scores, types);
    }

    private static void Str(BinaryWriter f, string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        f.Write((ulong)b.Length);
        f.Write(b);
    }

    private static ulong Align(ulong n) => (n + Alignment - 1) / Alignment * Alignment;

    private static void Pad(BinaryWriter f)
    {
        long pos = f.BaseStream.Position;
        for (long i = pos; i < (long)Align((ulong)pos); i++) f.Write((byte)0);
    }
}
