using ProxyOrleans.Inference.Checkpoints;
using ProxyOrleans.Inference.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ProxyOrleans.Inference.Tests;

public class CheckpointTests
{
    [Fact]
    public void ParameterNamesAreHuggingFaces()
    {
        using var untied = new LlamaForCausalLM(TinyHfModels.Tiny(), init: false);
        var names = untied.state_dict().Keys.ToHashSet();
        Assert.Contains("model.embed_tokens.weight", names);
        Assert.Contains("model.layers.1.self_attn.q_proj.weight", names);
        Assert.Contains("model.layers.0.self_attn.k_proj.weight", names);
        Assert.Contains("model.layers.0.mlp.gate_proj.weight", names);
        Assert.Contains("model.layers.0.input_layernorm.weight", names);
        Assert.Contains("model.layers.0.post_attention_layernorm.weight", names);
        Assert.Contains("model.norm.weight", names);
        Assert.Contains("lm_head.weight", names);
        Assert.Equal(2 + 2 * 9 + 1, names.Count);
        Assert.Equal([32L, 64L], untied.state_dict()["model.layers.0.self_attn.k_proj.weight"].shape);

        using var tied = new LlamaForCausalLM(TinyHfModels.Tiny(tied: true, bias: true), init: false);
        var tn = tied.state_dict().Keys.ToHashSet();
        Assert.DoesNotContain("lm_head.weight", tn);
        Assert.Contains("model.layers.0.self_attn.q_proj.bias", tn);
        Assert.DoesNotContain("model.layers.0.self_attn.o_proj.bias", tn); // Qwen2: q/k/v bias only
    }

    [Theory]
    [InlineData(false, 2, false)]
    [InlineData(true, 4, true)]   // tied head, Qwen2-style q/k/v bias
    public void TheCheckpointKeyListIsTheTrainingModulesStateDict(bool tied, int kvHeads, bool bias)
    {
        var config = TinyHfModels.Tiny(tied, kvHeads, bias);
        using var module = new LlamaForCausalLM(config, init: false);
        var state = module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        var keys = LlamaCheckpointKeys.Shapes(config);
        Assert.Equal(state.Keys.Order(), keys.Keys.Order());
        foreach (var (name, shape) in keys) Assert.True(shape.SequenceEqual(state[name]), name);
    }

    [Theory]
    [InlineData(SafetensorsDType.F32, 0.0)]
    [InlineData(SafetensorsDType.BF16, 1e-2)]
    [InlineData(SafetensorsDType.F16, 1e-3)]
    public void SaveLoadRoundTripKeepsWeightsAndLogits(SafetensorsDType dtype, double tol)
    {
        torch.manual_seed(7);
        var config = TinyHfModels.Tiny();
        using var a = new LlamaForCausalLM(config);
        string dir = TinyHfModels.NewDir("roundtrip");
        a.SavePretrained(dir, dtype);
        Assert.Equal(config, LlamaConfig.Load(dir) with { EosTokenIds = config.EosTokenIds });
        using var b = LlamaForCausalLM.FromPretrained(dir);
        var sa = a.state_dict(); var sb = b.state_dict();
        foreach (var (name, t) in sa)
        {
            double diff = (t - sb[name]).abs().max().item<float>();
            Assert.True(diff <= tol * Math.Max(1, t.abs().max().item<float>()), $"{name}: {diff}");
        }
        using var ids = tensor(new long[] { 1, 5, 9, 200, 3, 7 }).reshape(1, 6);
        using var la = a.call(ids); using var lb = b.call(ids);
        Assert.Equal([1L, 6L, 300L], la.shape);
        if (dtype == SafetensorsDType.F32) Assert.True(la.equal(lb).all().item<bool>());
    }

    [Fact]
    public void ShardedCheckpointLoads()
    {
        torch.manual_seed(8);
        using var a = new LlamaForCausalLM(TinyHfModels.Tiny());
        string dir = TinyHfModels.NewDir("sharded");
        a.Config.Save(dir);
        var state = a.state_dict().ToList();
        var first = state.Take(5).ToList(); var rest = state.Skip(5).ToList();
        Safetensors.Save(Path.Combine(dir, "model-00001-of-00002.safetensors"), first, SafetensorsDType.BF16);
        Safetensors.Save(Path.Combine(dir, "model-00002-of-00002.safetensors"), rest);
        var map = string.Join(",", first.Select(kv => $"\"{kv.Key}\": \"model-00001-of-00002.safetensors\"")
            .Concat(rest.Select(kv => $"\"{kv.Key}\": \"model-00002-of-00002.safetensors\"")));
        File.WriteAllText(Path.Combine(dir, Safetensors.IndexFile), "{\"metadata\": {}, \"weight_map\": {" + map + "}}");
        using var b = LlamaForCausalLM.FromPretrained(dir);
        string last = rest[^1].Key;
        Assert.True(b.state_dict()[last].equal(a.state_dict()[last]).all().item<bool>());
    }

    private static string SaveWith(Action<Dictionary<string, Tensor>> edit)
    {
        torch.manual_seed(9);
        using var m = new LlamaForCausalLM(TinyHfModels.Tiny());
        string dir = TinyHfModels.NewDir("bad");
        m.Config.Save(dir);
        var state = m.state_dict();
        edit(state);
        Safetensors.Save(Path.Combine(dir, Safetensors.SingleFile), state);
        return dir;
    }

    [Fact]
    public void MissingTensorIsNamed()
    {
        string dir = SaveWith(s => s.Remove("model.layers.1.mlp.up_proj.weight"));
        var e = Assert.Throws<InvalidDataException>(() => LlamaForCausalLM.FromPretrained(dir));
        Assert.Contains("missing tensor 'model.layers.1.mlp.up_proj.weight'", e.Message);
        Assert.Contains("[96, 64]", e.Message);
    }

    [Fact]
    public void UnexpectedTensorIsNamed()
    {
        string dir = SaveWith(s => s["model.layers.0.self_attn.q_proj.bias"] = zeros(64));
        var e = Assert.Throws<InvalidDataException>(() => LlamaForCausalLM.FromPretrained(dir));
        Assert.Contains("unexpected tensor 'model.layers.0.self_attn.q_proj.bias'", e.Message);
    }

    [Fact]
    public void BroadcastableWrongShapeIsRefused()
    {
        // [1, 64] would broadcast into the [64] norm weight with copy_: it must be refused, naming both shapes and the file.
        string dir = SaveWith(s => s["model.norm.weight"] = ones(1, 64));
        var e = Assert.Throws<InvalidDataException>(() => LlamaForCausalLM.FromPretrained(dir));
        Assert.Contains("'model.norm.weight' in model.safetensors has shape [1, 64], expected [64]", e.Message);
    }

    [Fact]
    public void ConfigErrorsAreClear()
    {
        var e = Assert.Throws<InvalidDataException>(() => LlamaConfig.Parse("{\"hidden_size\": 64, \"num_attention_heads\": 4}", "x/config.json"));
        Assert.Contains("'intermediate_size' is missing", e.Message);
        e = Assert.Throws<InvalidDataException>(() => LlamaConfig.Parse(
            "{\"hidden_size\": 64, \"intermediate_size\": 9, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"num_key_value_heads\": 3, \"vocab_size\": 10}"));
        Assert.Contains("multiple of num_key_value_heads (3)", e.Message);
        e = Assert.Throws<InvalidDataException>(() => LlamaConfig.Parse(
            "{\"hidden_size\": \"64\", \"intermediate_size\": 9, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"vocab_size\": 10}"));
        Assert.Contains("'hidden_size' must be an integer", e.Message);
    }

    [Fact]
    public void Llama3ConfigParses()
    {
        var c = LlamaConfig.Parse("""
            {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192,
             "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "rms_norm_eps": 1e-05,
             "rope_theta": 500000.0, "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
             "original_max_position_embeddings": 8192, "rope_type": "llama3"}, "tie_word_embeddings": true, "vocab_size": 128256,
             "max_position_embeddings": 131072, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}
            """);
        Assert.Equal(8, c.NumKeyValueHeads);
        Assert.Equal(new RopeScaling(32, 1, 4, 8192), c.RopeScaling);
        Assert.Equal([128001, 128008, 128009], c.EosTokenIds);
        Assert.True(c.TieWordEmbeddings);
        var inv = c.RopeInverseFrequencies();
        Assert.Equal(1.0, inv[0]); // high-frequency band untouched
        Assert.Equal(1.0 / Math.Pow(500000, 62.0 / 64) / 32, inv[31], 12); // low-frequency band divided by factor
        var back = LlamaConfig.Parse(c.ToJson());
        Assert.Equal(c.EosTokenIds, back.EosTokenIds);
        Assert.Equal(c, back with { EosTokenIds = c.EosTokenIds });
    }

    [Fact]
    public void TrainingStepLowersLoss()
    {
        torch.manual_seed(10);
        using var m = new LlamaForCausalLM(TinyHfModels.Tiny());
        var opt = optim.AdamW(m.parameters(), lr: 1e-2);
        using var ids = randint(0, 300, [2, 16]);
        float first = 0, last = 0;
        for (int i = 0; i < 5; i++)
        {
            opt.zero_grad();
            using var loss = m.Loss(ids);
            loss.backward();
            opt.step();
            if (i == 0) first = loss.item<float>();
            last = loss.item<float>();
        }
        Assert.InRange(first, 5.0, 6.5); // ~ln(300) at init
        Assert.True(last < first - 0.5, $"loss {first} -> {last}");
        Assert.All(m.parameters(), p => Assert.NotNull(p.grad));
    }
}
