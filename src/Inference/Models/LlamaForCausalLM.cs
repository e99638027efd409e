using ProxyOrleans.Inference.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ProxyOrleans.Inference.Models;

/// <summary>
/// A trainable Llama (HF modeling_llama.py) as a TorchSharp module. Parameter names equal HF's
/// (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ..., model.norm.weight, lm_head.weight
/// unless tied), so state dicts load from and save to HF checkpoints as they are.
/// forward(input_ids [B,T]) -> logits [B,T,V], full causal sequence, autograd-friendly. For serving use
/// <see cref="LlamaInferenceModel"/>, which runs the same weights with a KV cache.
/// </summary>
public sealed class LlamaForCausalLM : nn.Module<Tensor, Tensor>
{
    public LlamaConfig Config { get; }
    private readonly LlamaModel model;
    private readonly Linear? lm_head;

    /// <param name="init">Draw weights as HF does (normal(0, initializer_range), norms 1); false leaves them
    /// uninitialized for loading.</param>
    public LlamaForCausalLM(LlamaConfig config, Device? device = null, bool init = true) : base(nameof(LlamaForCausalLM))
    {
        config.Validate();
        Config = config;
        model = new LlamaModel(config);
        if (!config.TieWordEmbeddings) lm_head = nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false);
        RegisterComponents();
        if (init) InitWeights();
        if (device is not null && device.type != DeviceType.CPU) this.to(device);
    }

    public override Tensor forward(Tensor input_ids)
    {
        using var scope = NewDisposeScope();
        var h = model.call(input_ids);
        var logits = lm_head is null ? F.linear(h, model.embed_tokens.weight!) : lm_head.call(h);
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>Cross-entropy of next-token prediction over input_ids [B,T] (targets are the ids shifted by one).</summary>
    public Tensor Loss(Tensor input_ids)
    {
        using var scope = NewDisposeScope();
        long t = input_ids.shape[1];
        var logits = forward(input_ids.narrow(1, 0, t - 1));
        var targets = input_ids.narrow(1, 1, t - 1);
        var loss = F.cross_entropy(logits.reshape(-1, Config.VocabSize), targets.reshape(-1));
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>Builds the model from a HF directory (config.json + safetensors), checking every tensor.</summary>
    public static LlamaForCausalLM FromPretrained(string dir, Device? device = null)
    {
        var m = new LlamaForCausalLM(LlamaConfig.Load(dir), init: false);
        HfCheckpoint.LoadInto(m, dir);
        if (device is not null && device.type != DeviceType.CPU) m.to(device);
        return m;
    }

    /// <summary>Writes config.json and model.safetensors (F32 by default; F16/BF16 for compact demo models).</summary>
    public void SavePretrained(string dir, SafetensorsDType dtype = SafetensorsDType.F32)
    {
        Config.Save(dir, dtype switch { SafetensorsDType.F16 => "float16", SafetensorsDType.BF16 => "bfloat16", _ => "float32" });
        HfCheckpoint.Save(this, dir, dtype);
    }

    private void InitWeights()
    {
        using var _ = no_grad();
        foreach (var (name, p) in named_parameters())
        {
            if (name.EndsWith("norm.weight")) p.fill_(1.0);
            else if (name.EndsWith(".bias")) p.zero_();
            else nn.init.normal_(p, 0, Config.InitializerRange);
        }
    }
}

internal sealed class LlamaModel : nn.Module<Tensor, Tensor>
{
    public readonly Embedding embed_tokens;
    private readonly ModuleList<LlamaDecoderLayer> layers;
    private readonly LlamaRMSNorm norm;
    private readonly double[] invFreq;

    public LlamaModel(LlamaConfig config) : base(nameof(LlamaModel))
    {
        embed_tokens = nn.Embedding(config.VocabSize, config.HiddenSize);
        layers = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new LlamaDecoderLayer(config)).ToArray());
        norm = new LlamaRMSNorm(config.HiddenSize, config.RmsNormEps);
        invFreq = config.RopeInverseFrequencies();
        RegisterComponents();
    }

    public override Tensor forward(Tensor input_ids)
    {
        long t = input_ids.shape[1];
        var (cos, sin) = Rope.CosSin(invFreq, 0, t, input_ids.device);
        var h = embed_tokens.call(input_ids);
        foreach (var layer in layers) h = layer.forward(h, cos, sin);
        return norm.call(h);
    }
}

internal sealed class LlamaDecoderLayer : nn.Module
{
    private readonly LlamaRMSNorm input_layernorm;
    private readonly LlamaAttention self_attn;
    private readonly LlamaRMSNorm post_attention_layernorm;
    private readonly LlamaMLP mlp;

    public LlamaDecoderLayer(LlamaConfig config) : base(nameof(LlamaDecoderLayer))
    {
        input_layernorm = new LlamaRMSNorm(config.HiddenSize, config.RmsNormEps);
        self_attn = new LlamaAttention(config);
        post_attention_layernorm = new LlamaRMSNorm(config.HiddenSize, config.RmsNormEps);
        mlp = new LlamaMLP(config);
        RegisterComponents();
    }

    public Tensor forward(Tensor h, Tensor cos, Tensor sin)
    {
        h = h + self_attn.forward(input_layernorm.call(h), cos, sin);
        return h + mlp.call(post_attention_layernorm.call(h));
    }
}

internal sealed class LlamaAttention : nn.Module
{
    private readonly Linear q_proj, k_proj, v_proj, o_proj;
    private readonly int heads, kvHeads, headDim;

    public LlamaAttention(LlamaConfig c) : base(nameof(LlamaAttention))
    {
        heads = c.NumAttentionHeads; kvHeads = c.NumKeyValueHeads; headDim = c.HeadDim;
        q_proj = nn.Linear(c.HiddenSize, heads * headDim, hasBias: c.AttentionBias);
        k_proj = nn.Linear(c.HiddenSize, kvHeads * headDim, hasBias: c.AttentionBias);
        v_proj = nn.Linear(c.HiddenSize, kvHeads * headDim, hasBias: c.AttentionBias);
        o_proj = nn.Linear(heads * headDim, c.HiddenSize, hasBias: c.OProjBias);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, Tensor cos, Tensor sin)
    {
        long b = x.shape[0], t = x.shape[1];
        var q = q_proj.call(x).view(b, t, heads, headDim).transpose(1, 2);
        var k = k_proj.call(x).view(b, t, kvHeads, headDim).transpose(1, 2);
        var v = v_proj.call(x).view(b, t, kvHeads, headDim).transpose(1, 2);
        q = Rope.Apply(q, cos, sin);
        k = Rope.Apply(k, cos, sin);
        if (kvHeads != heads)
        {
            // HF repeat_kv: query head h reads kv head h / (heads / kvHeads).
            k = k.repeat_interleave(heads / kvHeads, dim: 1);
            v = v.repeat_interleave(heads / kvHeads, dim: 1);
        }
        var y = F.scaled_dot_product_attention(q, k, v, is_casual: true);
        return o_proj.call(y.transpose(1, 2).reshape(b, t, heads * headDim));
    }
}

internal sealed class LlamaMLP : nn.Module<Tensor, Tensor>
{
    private readonly Linear gate_proj, up_proj, down_proj;

    public LlamaMLP(LlamaConfig c) : base(nameof(LlamaMLP))
    {
        gate_proj = nn.Linear(c.HiddenSize, c.IntermediateSize, hasBias: false);
        up_proj = nn.Linear(c.HiddenSize, c.IntermediateSize, hasBias: false);
        down_proj = nn.Linear(c.IntermediateSize, c.HiddenSize, hasBias: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => down_proj.call(F.silu(gate_proj.call(x)) * up_proj.call(x));
}

internal sealed class LlamaRMSNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double eps;

    public LlamaRMSNorm(int size, double eps) : base(nameof(LlamaRMSNorm))
    {
        weight = nn.Parameter(ones(size));
        this.eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => weight * Normalize(x, eps);

    /// <summary>x / sqrt(mean(x²) + eps) over the last dimension; the torch inference path folds the weight into the next matrix.</summary>
    public static Tensor Normalize(Tensor x, double eps)
    {
        // An explicit Scalar held for the call: an implicit one can be finalised while libtorch still reads it
        // (seen as "Expected false to be true" in prefills under load).
        using Scalar epsilon = eps;
        return x * x.square().mean([-1L], keepdim: true).add(epsilon).rsqrt();
    }
}

/// <summary>HF rotate_half RoPE on [B, heads, T, head_dim] with <see cref="RopeTable"/>'s cos/sin.</summary>
internal static class Rope
{
    /// <summary>cos, sin: [T, head_dim] for positions start..start+T-1 (<see cref="RopeTable.Build"/>).</summary>
    public static (Tensor cos, Tensor sin) CosSin(double[] invFreq, long start, long t, Device device)
    {
        var (cos, sin) = RopeTable.Build(invFreq, start, t);
        long width = 2L * invFreq.Length;
        return (tensor(cos, new long[] { t, width }, device: device), tensor(sin, new long[] { t, width }, device: device));
    }

    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.shape[^1] / 2;
        var rotated = cat([-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
        return x * cos + rotated * sin;
    }
}
