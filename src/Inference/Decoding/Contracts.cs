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
}

public enum FinishReason { None, Length, Stop, Eos, Cancelled }
