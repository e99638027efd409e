using System.Text.Json;
using System.Text.Json.Nodes;

namespace ProxyOrleans.Inference.Models;

/// <summary>Llama 3 "rope_scaling": {"rope_type": "llama3", factor, low_freq_factor, high_freq_factor, original_max_position_embeddings}.</summary>
public sealed record RopeScaling(double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositionEmbeddings)
{
    public string RopeType => "llama3";
}

/// <summary>
/// The fields of a Hugging Face Llama-family config.json (Llama 2/3, Mistral, Qwen2) that the forward pass needs.
/// Names follow HF's; defaults are HF LlamaConfig's.
/// </summary>
public sealed record LlamaConfig
{
    public string ModelType { get; init; } = "llama";
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    public required int NumAttentionHeads { get; init; }
    public required int NumKeyValueHeads { get; init; }
    public required int HeadDim { get; init; }
    public required int VocabSize { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public double RmsNormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 10000;
    public RopeScaling? RopeScaling { get; init; }
    public bool TieWordEmbeddings { get; init; }
    /// <summary>Bias on q/k/v (and on o_proj for Llama; Qwen2 has q/k/v bias only).</summary>
    public bool AttentionBias { get; init; }
    public double InitializerRange { get; init; } = 0.02;
    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    /// <summary>Qwen2 puts a bias on q/k/v but not on o_proj; Llama's attention_bias covers all four.</summary>
    public bool OProjBias => AttentionBias && ModelType != "qwen2";

    public int KvDim => NumKeyValueHeads * HeadDim;

    /// <summary>Reads config.json from a model directory (or the file itself).</summary>
    public static LlamaConfig Load(string dirOrFile)
    {
        string path = Directory.Exists(dirOrFile) ? Path.Combine(dirOrFile, "config.json") : dirOrFile;
        if (!File.Exists(path))
            throw new FileNotFoundException($"No config.json at '{path}': a model directory must be in Hugging Face layout (config.json + model.safetensors).", path);
        return Parse(File.ReadAllText(path), path);
    }

    public static LlamaConfig Parse(string json, string source = "config.json")
    {
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw new FormatException("not a JSON object"); }
        catch (Exception e) when (e is JsonException or FormatException)
        { throw new InvalidDataException($"{source}: not a valid JSON object ({e.Message})."); }

        string modelType = Str(o, "model_type", source) ?? "llama";
        if (modelType is not ("llama" or "mistral" or "qwen2"))
            throw new InvalidDataException($"{source}: model_type '{modelType}' is not supported (llama, mistral, qwen2 are).");
        string act = Str(o, "hidden_act", source) ?? "silu";
        if (act != "silu")
            throw new InvalidDataException($"{source}: hidden_act '{act}' is not supported (only silu, as in Llama).");
        if (Bool(o, "mlp_bias", source) == true)
            throw new InvalidDataException($"{source}: mlp_bias=true is not supported.");

        int hidden = Int(o, "hidden_size", source) ?? throw Missing("hidden_size", source);
        int heads = Int(o, "num_attention_heads", source) ?? throw Missing("num_attention_heads", source);
        int kvHeads = Int(o, "num_key_value_heads", source) ?? heads;
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0)
            throw new InvalidDataException($"{source}: num_attention_heads ({heads}) must be a positive multiple of num_key_value_heads ({kvHeads}).");
        int? headDimField = Int(o, "head_dim", source);
        if (headDimField is null && hidden % heads != 0)
            throw new InvalidDataException($"{source}: hidden_size ({hidden}) is not divisible by num_attention_heads ({heads}) and head_dim is not given.");
        int headDim = headDimField ?? hidden / heads;

        int maxPos = Int(o, "max_position_embeddings", source) ?? 2048;
        // Mistral's sliding window is exact up to its length: treat it as the context limit.
        if (modelType == "mistral" && Int(o, "sliding_window", source) is int window && window < maxPos) maxPos = window;
        // Qwen2 always has q/k/v bias (its config has no attention_bias field).
        bool attentionBias = Bool(o, "attention_bias", source) ?? modelType == "qwen2";

        var config = new LlamaConfig
        {
            ModelType = modelType,
            HiddenSize = hidden,
            IntermediateSize = Int(o, "intermediate_size", source) ?? throw Missing("intermediate_size", source),
            NumHiddenLayers = Int(o, "num_hidden_layers", source) ?? throw Missing("num_hidden_layers", source),
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = Int(o, "vocab_size", source) ?? throw Missing("vocab_size", source),
            MaxPositionEmbeddings = maxPos,
            RmsNormEps = Dbl(o, "rms_norm_eps", source) ?? 1e-6,
            RopeTheta = Dbl(o, "rope_theta", source) ?? 10000,
            RopeScaling = ParseRopeScaling(o["rope_scaling"], source),
            TieWordEmbeddings = Bool(o, "tie_word_embeddings", source) ?? false,
            AttentionBias = attentionBias,
            InitializerRange = Dbl(o, "initializer_range", source) ?? 0.02,
            BosTokenId = Int(o, "bos_token_id", source),
            EosTokenIds = IntOrList(o, "eos_token_id", source),
        };
        config.Validate(source);
        return config;
    }

    /// <summary>Throws when a field is out of range; called by Parse and by code that builds configs.</summary>
    public void Validate(string source = "config")
    {
        void Positive(int v, string name)
        {
            if (v <= 0) throw new InvalidDataException($"{source}: {name} must be positive, got {v}.");
        }
        Positive(HiddenSize, "hidden_size"); Positive(IntermediateSize, "intermediate_size");
        Positive(NumHiddenLayers, "num_hidden_layers"); Positive(NumAttentionHeads, "num_attention_heads");
        Positive(NumKeyValueHeads, "num_key_value_heads"); Positive(HeadDim, "head_dim");
        Positive(VocabSize, "vocab_size"); Positive(MaxPositionEmbeddings, "max_position_embeddings");
        if (NumAttentionHeads % NumKeyValueHeads != 0)
            throw new InvalidDataException($"{source}: num_attention_heads ({NumAttentionHeads}) must be a multiple of num_key_value_heads ({NumKeyValueHeads}).");
        if (HeadDim % 2 != 0) throw new InvalidDataException($"{source}: head_dim ({HeadDim}) must be even for RoPE.");
        if (RmsNormEps <= 0) throw new InvalidDataException($"{source}: rms_norm_eps must be positive.");
        if (RopeTheta <= 0) throw new InvalidDataException($"{source}: rope_theta must be positive.");
    }

    /// <summary>Writes config.json into <paramref name="dir"/> (created if needed), HF field names.</summary>
    public void Save(string dir, string torchDtype = "float32")
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), ToJson(torchDtype));
    }

    /// <param name="torchDtype">HF's "torch_dtype": the dtype the weights are stored in (float32, float16, bfloat16).</param>
    public string ToJson(string torchDtype = "float32")
    {
        string arch = ModelType switch { "qwen2" => "Qwen2ForCausalLM", "mistral" => "MistralForCausalLM", _ => "LlamaForCausalLM" };
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray(arch),
            ["model_type"] = ModelType,
            ["hidden_act"] = "silu",
            ["hidden_size"] = HiddenSize,
            ["intermediate_size"] = IntermediateSize,
            ["num_hidden_layers"] = NumHiddenLayers,
            ["num_attention_heads"] = NumAttentionHeads,
            ["num_key_value_heads"] = NumKeyValueHeads,
            ["head_dim"] = HeadDim,
            ["vocab_size"] = VocabSize,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["rms_norm_eps"] = RmsNormEps,
            ["rope_theta"] = RopeTheta,
            ["rope_scaling"] = RopeScaling is null ? null : new JsonObject
            {
                ["rope_type"] = "llama3",
                ["factor"] = RopeScaling.Factor,
                ["low_freq_factor"] = RopeScaling.LowFreqFactor,
                ["high_freq_factor"] = RopeScaling.HighFreqFactor,
                ["original_max_position_embeddings"] = RopeScaling.OriginalMaxPositionEmbeddings,
            },
            ["tie_word_embeddings"] = TieWordEmbeddings,
            ["attention_bias"] = AttentionBias,
            ["initializer_range"] = InitializerRange,
            ["torch_dtype"] = torchDtype,
        };
        if (BosTokenId is int bos) o["bos_token_id"] = bos;
        if (EosTokenIds.Count == 1) o["eos_token_id"] = EosTokenIds[0];
        else if (EosTokenIds.Count > 1) o["eos_token_id"] = new JsonArray(EosTokenIds.Select(i => (JsonNode)i).ToArray());
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>RoPE inverse frequencies (head_dim/2), with Llama 3 scaling applied when configured.</summary>
    public double[] RopeInverseFrequencies()
    {
        int half = HeadDim / 2;
        var invFreq = new double[half];
        for (int i = 0; i < half; i++) invFreq[i] = 1.0 / Math.Pow(RopeTheta, 2.0 * i / HeadDim);
        if (RopeScaling is { } s)
        {
            // As HF _compute_llama3_parameters.
            double lowFreqWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
            double highFreqWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
            for (int i = 0; i < half; i++)
            {
                double wavelen = 2 * Math.PI / invFreq[i];
                if (wavelen > lowFreqWavelen) invFreq[i] /= s.Factor;
                else if (wavelen >= highFreqWavelen)
                {
                    double smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                    invFreq[i] = (1 - smooth) * invFreq[i] / s.Factor + smooth * invFreq[i];
                }
            }
        }
        return invFreq;
    }

    private static RopeScaling? ParseRopeScaling(JsonNode? node, string source)
    {
        if (node is null) return null;
        if (node is not JsonObject s) throw new InvalidDataException($"{source}: rope_scaling must be an object or null.");
        string? type = Str(s, "rope_type", source) ?? Str(s, "type", source);
        if (type is null or "default") return null;
        if (type != "llama3")
            throw new InvalidDataException($"{source}: rope_scaling type '{type}' is not supported (only \"llama3\").");
        return new RopeScaling(
            Dbl(s, "factor", source) ?? throw Missing("rope_scaling.factor", source),
            Dbl(s, "low_freq_factor", source) ?? throw Missing("rope_scaling.low_freq_factor", source),
            Dbl(s, "high_freq_factor", source) ?? throw Missing("rope_scaling.high_freq_factor", source),
            Int(s, "original_max_position_embeddings", source) ?? throw Missing("rope_scaling.original_max_position_embeddings", source));
    }

    private static InvalidDataException Missing(string field, string source) =>
        new($"{source}: required field '{field}' is missing.");

    private static InvalidDataException Wrong(string field, string source, string expected, JsonNode node) =>
        new($"{source}: field '{field}' must be {expected}, got {node.ToJsonString()}.");

    private static int? Int(JsonObject o, string field, string source)
    {
        var n = o[field];
        if (n is null) return null;
        if (n is JsonValue v && v.TryGetValue(out long l) && l is >= int.MinValue and <= int.MaxValue) return (int)l;
        if (n is JsonValue d && d.TryGetValue(out double x) && x == Math.Floor(x) && Math.Abs(x) < int.MaxValue) return (int)x;
        throw Wrong(field, source, "an integer", n);
    }

    private static double? Dbl(JsonObject o, string field, string source)
    {
        var n = o[field];
        if (n is null) return null;
        if (n is JsonValue v && v.TryGetValue(out double d)) return d;
        throw Wrong(field, source, "a number", n);
    }

    private static bool? Bool(JsonObject o, string field, string source)
    {
        var n = o[field];
        if (n is null) return null;
        if (n is JsonValue v && v.TryGetValue(out bool b)) return b;
        throw Wrong(field, source, "true or false", n);
    }

    private static string? Str(JsonObject o, string field, string source)
    {
        var n = o[field];
        if (n is null) return null;
        if (n is JsonValue v && v.TryGetValue(out string? s)) return s;
        throw Wrong(field, source, "a string", n);
    }

    private static IReadOnlyList<int> IntOrList(JsonObject o, string field, string source)
    {
        var n = o[field];
        if (n is null) return [];
        if (n is JsonArray a)
            return a.Select(x => x is JsonValue v && v.TryGetValue(out int i) ? i : throw Wrong(field, source, "an integer or a list of integers", n)).ToArray();
        return [Int(o, field, source)!.Value];
    }
}
