using ProxyOrleans.Inference.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ProxyOrleans.Inference.Models;

/// <summary>
/// Llama-family inference with a KV cache, from the same weights as <see cref="LlamaForCausalLM"/>. Reading order:
/// <see cref="LlamaCheckpointKeys"/> (the weights), <see cref="RowForward"/> (the batch-invariant forward, default on
/// CPU) with <see cref="RowKernels"/> and <see cref="RowMatMul"/>, or <see cref="TorchForward"/> (the faster torch
/// path), <see cref="RopeTable"/>, <see cref="KvCacheSession"/> (the KV cache). This class checks inputs, reserves
/// cache room and hands each step to its forward path.
/// </summary>
public sealed class LlamaInferenceModel : ILogitsModel
{
    public LlamaConfig Config { get; }
    public string Name { get; }
    public int VocabSize => Config.VocabSize;
    public int MaxSequenceLength => Config.MaxPositionEmbeddings;
    public long KvBytesPerToken => 2L * Config.NumHiddenLayers * Config.KvDim * sizeof(float);
    public Device Device { get; }
    /// <summary>Whether this model runs the batch-invariant forward (asked for in the options and on CPU).</summary>
    public bool BatchInvariant { get; }

    private readonly RopeTable rope;
    private readonly IForwardPath forward;
    private bool disposed;

    private LlamaInferenceModel(LlamaConfig config, IReadOnlyDictionary<string, Tensor> weights, InferenceOptions options, string name)
    {
        Config = config;
        Name = options.Name ?? name;
        Device = ResolveDevice(options.Device, Name);
        if (options.Threads > 0) torch.set_num_threads(options.Threads);
        BatchInvariant = options.BatchInvariant && Device.type == DeviceType.CPU;
        rope = new RopeTable(config, Device);
        forward = BatchInvariant
            ? new RowForward(config, weights, rope, torch.get_num_threads())
            : new TorchForward(config, weights, rope, Device);
    }

    /// <summary>"cpu", "cuda" or "cuda:N" as a torch device; a clear error where this build or machine has no CUDA.</summary>
    public static Device ResolveDevice(string device, string model)
    {
        string d = device.Trim().ToLowerInvariant();
        if (d.StartsWith("cuda") && !torch.cuda.is_available())
            throw new NotSupportedException(
                $"Device '{device}' was asked for model '{model}', but this build has no usable CUDA backend " +
                "(TorchSharp-cpu, or no GPU/driver). Build with -p:TorchBackend=cuda on a GPU node (docs/gpu.md) or use cpu.");
        if (d != "cpu" && !d.StartsWith("cuda"))
            throw new ArgumentException($"Device '{device}' for model '{model}' is not one of cpu, cuda, cuda:N.");
        return torch.device(d);
    }

    /// <summary>Loads a HF model directory (config.json + safetensors), checking every tensor's name and shape.</summary>
    public static LlamaInferenceModel Load(string modelDir, InferenceOptions? options = null)
    {
        ResolveDevice((options ?? new()).Device, options?.Name ?? modelDir); // fail before reading weights
        var config = LlamaConfig.Load(modelDir);
        var weights = HfCheckpoint.Load(modelDir, LlamaCheckpointKeys.Shapes(config), LlamaCheckpointKeys.Optional(config));
        try
        {
            return new LlamaInferenceModel(config, weights, options ?? new(), new DirectoryInfo(modelDir).Name);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }

    /// <summary>An inference copy of a (trained) module's current weights.</summary>
    public static LlamaInferenceModel FromModule(LlamaForCausalLM module, InferenceOptions? options = null, string name = "model")
    {
        var state = module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu());
        return new LlamaInferenceModel(module.Config, state, options ?? new(), name);
    }

    /// <summary>HF tensor names and shapes for a config (<see cref="LlamaCheckpointKeys.Shapes"/>).</summary>
    public static Dictionary<string, long[]> ExpectedShapes(LlamaConfig c) => LlamaCheckpointKeys.Shapes(c);

    public IModelSession CreateSession(int capacity)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (capacity <= 0 || capacity > MaxSequenceLength)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity,
                $"A session of model '{Name}' holds 1..{MaxSequenceLength} tokens (max_position_embeddings).");
        return new KvCacheSession(this, capacity);
    }

    public void StepBatch(IReadOnlyList<IModelSession> sessions, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        if (tokens.Length != sessions.Count)
            throw new ArgumentException($"{sessions.Count} sessions but {tokens.Length} tokens: one token per session.", nameof(tokens));
        if (logits.Length < sessions.Count * VocabSize)
            throw new ArgumentException($"logits holds {logits.Length} floats; {sessions.Count} sessions need {sessions.Count * VocabSize}.", nameof(logits));
        if (sessions.Count == 0) return;
        var own = new KvCacheSession[sessions.Count];
        for (int i = 0; i < own.Length; i++)
        {
            own[i] = sessions[i] as KvCacheSession is { } s && s.Model == this
                ? s : throw new ArgumentException($"Session {i} does not belong to model '{Name}'.", nameof(sessions));
            if (Array.IndexOf(own, own[i], 0, i) >= 0)
                throw new ArgumentException($"Session {i} appears twice in one batch.", nameof(sessions));
        }
        Forward(own, tokens, Enumerable.Repeat(1, own.Length).ToArray(), logits);
    }

    /// <summary>
    /// One forward over several sessions: session i appends counts[i] tokens (taken in order from
    /// <paramref name="tokens"/>) and gets the logits of its last position in row i of <paramref name="logits"/>;
    /// with <paramref name="everyPosition"/> (one session) row t holds the logits after tokens[t].
    /// </summary>
    internal void Forward(KvCacheSession[] sessions, ReadOnlySpan<int> tokens, int[] counts, Span<float> logits, bool everyPosition = false)
    {
        if (everyPosition && sessions.Length != 1) throw new ArgumentException("Logits at every position are for one session at a time.", nameof(sessions));
        ObjectDisposedException.ThrowIf(disposed, this);
        foreach (int id in tokens)
            if ((uint)id >= (uint)VocabSize)
                throw new ArgumentOutOfRangeException(nameof(tokens), id, $"Token id {id} is outside the vocabulary of model '{Name}' (0..{VocabSize - 1}).");
        for (int i = 0; i < sessions.Length; i++) sessions[i].Reserve(counts[i]); // all checks before any cache is written
        if (BatchInvariant && sessions.Length == 1 && tokens.Length > RowForward.MaxRows)
        {
            // A long prompt in pieces of MaxRows bounds the activations' memory; with batch invariance that changes no bit.
            for (int start = 0; start < tokens.Length; start += RowForward.MaxRows)
            {
                int count = Math.Min(RowForward.MaxRows, tokens.Length - start);
                var rows = everyPosition ? logits.Slice(start * VocabSize, count * VocabSize) : logits;
                forward.Run(sessions, tokens.Slice(start, count), [count], rows, everyPosition);
                sessions[0].Length += count;
            }
            return;
        }
        forward.Run(sessions, tokens, counts, logits, everyPosition);
        for (int i = 0; i < sessions.Length; i++) sessions[i].Length += counts[i];
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        forward.Dispose();
        rope.Dispose();
    }
}
