namespace ProxyOrleans.Inference.Models;

/// <summary>How a model is run: device ("cpu", "cuda", "cuda:1"), CPU threads (0 = leave torch's setting), name, kernels.</summary>
public sealed record InferenceOptions
{
    public string Device { get; init; } = "cpu";
    /// <summary>torch.set_num_threads (process-wide). 0 keeps the current setting.</summary>
    public int Threads { get; init; }
    /// <summary>Name the model is served under; defaults to the directory name.</summary>
    public string? Name { get; init; }
    /// <summary>
    /// On CPU, every row's logits are bit-identical however the work was cut: alone or batched with other sessions,
    /// a prompt prefilled at once, in chunks or token by token, a history re-prefilled on a fresh session, at any
    /// thread count. Seeded sampling then gives the same tokens on every path. Costs speed (docs/model.md);
    /// false selects the faster torch/MKL path, whose last bits depend on the batch shape. Ignored on other devices.
    /// </summary>
    public bool BatchInvariant { get; init; } = true;
}
