namespace ProxyOrleans.Inference.Models;

/// <summary>
/// The one list of a Llama checkpoint's tensors (HF names, as <see cref="LlamaForCausalLM"/>'s modules produce them):
/// the loader checks a checkpoint against <see cref="Shapes"/> and the inference engine reads its weights by these
/// names. CheckpointTests ties it to the training module's state dict.
/// </summary>
public static class LlamaCheckpointKeys
{
    public const string Embedding = "model.embed_tokens.weight";
    public const string FinalNorm = "model.norm.weight";
    /// <summary>Absent when tie_word_embeddings: the head is the embedding.</summary>
    public const string LmHead = "lm_head.weight";

    /// <summary>The tensors of decoder layer <paramref name="Index"/>, in the order data flows through it.</summary>
    public sealed record Layer(int Index)
    {
        private string P => $"model.layers.{Index}.";
        public string InputNorm => P + "input_layernorm.weight";
        public string Q => P + "self_attn.q_proj.weight";
        public string K => P + "self_attn.k_proj.weight";
        public string V => P + "self_attn.v_proj.weight";
        public string QBias => P + "self_attn.q_proj.bias";
        public string KBias => P + "self_attn.k_proj.bias";
        public string VBias => P + "self_attn.v_proj.bias";
        public string O => P + "self_attn.o_proj.weight";
        public string OBias => P + "self_attn.o_proj.bias";
        public string PostAttentionNorm => P + "post_attention_layernorm.weight";
        public string Gate => P + "mlp.gate_proj.weight";
        public string Up => P + "mlp.up_proj.weight";
        public string Down => P + "mlp.down_proj.weight";
    }

    /// <summary>Tensors a tied checkpoint may leave out (HF writes lm_head.weight for tied models sometimes).</summary>
    public static ISet<string>? Optional(LlamaConfig c) => c.TieWordEmbeddings ? new HashSet<string> { LmHead } : null;

    /// <summary>HF tensor names and shapes ([out, in] for projections) for a config: a checkpoint must hold exactly these.</summary>
    public static Dictionary<string, long[]> Shapes(LlamaConfig c)
    {
        long h = c.HiddenSize, q = c.NumAttentionHeads * c.HeadDim, kv = c.KvDim, i = c.IntermediateSize;
        var s = new Dictionary<string, long[]> { [Embedding] = [c.VocabSize, h], [FinalNorm] = [h] };
        if (!c.TieWordEmbeddings) s[LmHead] = [c.VocabSize, h];
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            var k = new Layer(l);
            s[k.InputNorm] = [h];
            s[k.Q] = [q, h];
            s[k.K] = [kv, h];
            s[k.V] = [kv, h];
            if (c.AttentionBias) { s[k.QBias] = [q]; s[k.KBias] = [kv]; s[k.VBias] = [kv]; }
            s[k.O] = [h, q];
            if (c.OProjBias) s[k.OBias] = [h];
            s[k.PostAttentionNorm] = [h];
            s[k.Gate] = [i, h];
            s[k.Up] = [i, h];
            s[k.Down] = [h, i];
        }
        return s;
    }
}
