namespace ProxyOrleans.Inference.Decoding;

/// <summary>
/// A proxy-tuned combination: logits = base + alpha * Σ_i weight_i * (expert_i − antiExpert_i).
/// Model names refer to loaded models (a model directory's name or a configured alias).
/// </summary>
public sealed record ProxyCombination(string Base, IReadOnlyList<ExpertPair> Experts, float Alpha = 1f)
{
    /// <summary>Only the base model: plain decoding, no steering.</summary>
    public static ProxyCombination BaseOnly(string baseModel) => new(baseModel, [], 0f);
}

public sealed record ExpertPair(string Expert, string AntiExpert, float Weight = 1f);

/// <summary>Sampling and stopping, applied to the combined logits in the reference's order.</summary>
public sealed record SamplingOptions
{
    /// <summary>0 means greedy (argmax).</summary>
    public float Temperature { get; init; }
    /// <summary>0 disables top-k.</summary>
    public int TopK { get; init; }
    /// <summary>1 disables top-p.</summary>
    public float TopP { get; init; } = 1f;
    /// <summary>With a seed, a sampled run repeats exactly; each step's randomness depends only on (seed, step).</summary>
    public ulong? Seed { get; init; }
    public int MaxNewTokens { get; init; } = 64;
    public IReadOnlyList<string> Stop { get; init; } = [];
    /// <summary>Stop at the end-of-sequence token (default on).</summary>
    public bool StopAtEos { get; init; } = true;

    // Logits processors (LogitsProcessors), applied in vLLM's order: logit bias, then the repetition, frequency and
    // presence penalties, then (Sampler) temperature, min-p, top-k, top-p. Each default changes nothing.
    /// <summary>Token id → value added to its logit before anything else (OpenAI's logit_bias; each in [-100, 100]).</summary>
    public IReadOnlyDictionary<int, float> LogitBias { get; init; } = LogitsProcessors.NoBias;
    /// <summary>vLLM/HF repetition penalty (&gt; 0; 1 = off) over the prompt's and the output's tokens.</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    /// <summary>OpenAI frequency penalty in [-2, 2]: minus this times each token's count in the output.</summary>
    public float FrequencyPenalty { get; init; }
    /// <summary>OpenAI presence penalty in [-2, 2]: minus this for each token present in the output.</summary>
    public float PresencePenalty { get; init; }
    /// <summary>Min-p in [0, 1] (0 = off): drops tokens less likely than min_p times the most likely one, after temperature.</summary>
    public float MinP { get; init; }
    /// <summary>Token ids that end the generation (finish "stop", their text not emitted), whatever <see cref="StopAtEos"/> says.</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];
}

public enum FinishReason { None, Length, Stop, Eos, Cancelled }
