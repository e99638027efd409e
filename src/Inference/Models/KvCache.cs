using static TorchSharp.torch;

namespace ProxyOrleans.Inference.Models;

/// <summary>
/// A sequence's KV cache: one tensor [layers, 2, kv_heads, allocated, head_dim] (a position's k and v of one layer
/// are written by one copy), grown by doubling up to the session's capacity, with per-layer views for the torch path.
/// </summary>
internal sealed class KvCacheSession(LlamaInferenceModel model, int capacity) : IModelSession
{
    public LlamaInferenceModel Model => model;
    public int Length { get; set; }
    /// <summary>Positions the cache tensor holds room for (its fourth dimension).</summary>
    public int Allocated { get; private set; }
    /// <summary>Per layer: [2, kv_heads, allocated, head_dim] (k then v).</summary>
    public Tensor[] Layer { get; private set; } = [];
    /// <summary>Per layer: keys transposed [kv_heads, head_dim, allocated], a view for q·Kᵀ on the torch path.</summary>
    public Tensor[] KeysT { get; private set; } = [];
    /// <summary>Per layer: values [kv_heads, allocated, head_dim], a view.</summary>
    public Tensor[] Values { get; private set; } = [];
    private Tensor? cache;
    private bool disposed;

    public void Append(ReadOnlySpan<int> tokens, Span<float> lastLogits)
    {
        if (tokens.Length == 0) throw new ArgumentException("Append needs at least one token.", nameof(tokens));
        if (lastLogits.Length < model.VocabSize)
            throw new ArgumentException($"lastLogits holds {lastLogits.Length} floats; the model's vocabulary has {model.VocabSize}.", nameof(lastLogits));
        model.Forward([this], tokens, [tokens.Length], lastLogits);
    }

    public void AppendScoringEveryPosition(ReadOnlySpan<int> tokens, Span<float> logitsPerPosition)
    {
        if (tokens.Length == 0) throw new ArgumentException("Append needs at least one token.", nameof(tokens));
        if (logitsPerPosition.Length < (long)tokens.Length * model.VocabSize)
            throw new ArgumentException($"logitsPerPosition holds {logitsPerPosition.Length} floats; {tokens.Length} positions of vocabulary {model.VocabSize} need {(long)tokens.Length * model.VocabSize}.", nameof(logitsPerPosition));
        model.Forward([this], tokens, [tokens.Length], logitsPerPosition, everyPosition: true);
    }

    /// <summary>Makes room for <paramref name="count"/> more tokens, or throws before anything is written.</summary>
    public void Reserve(int count)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (Length + count > capacity)
            throw new ContextLengthExceededException(
                $"Model '{model.Name}': the session holds {Length} tokens and {count} more would exceed its capacity of {capacity} " +
                $"(max_position_embeddings {model.MaxSequenceLength}). Shorten the prompt or lower max_tokens.");
        if (Length + count <= Allocated) return;
        int size = Math.Min(capacity, Math.Max(Length + count, Math.Max(64, Allocated * 2)));
        var c = model.Config;
        var grown = zeros(new long[] { c.NumHiddenLayers, 2, c.NumKeyValueHeads, size, c.HeadDim }, device: model.Device);
        grown.DetachFromDisposeScope();
        if (cache is not null)
        {
            using (var dst = grown.narrow(3, 0, Length)) using (var src = cache.narrow(3, 0, Length)) dst.copy_(src);
            DisposeViews();
            cache.Dispose();
        }
        cache = grown;
        Allocated = size;
        Layer = new Tensor[c.NumHiddenLayers];
        KeysT = new Tensor[c.NumHiddenLayers];
        Values = new Tensor[c.NumHiddenLayers];
        for (int l = 0; l < Layer.Length; l++)
        {
            Layer[l] = cache[l].DetachFromDisposeScope();
            using (var k = cache[l, 0]) KeysT[l] = k.transpose(1, 2).DetachFromDisposeScope();
            Values[l] = cache[l, 1].DetachFromDisposeScope();
        }
    }

    private void DisposeViews()
    {
        foreach (var t in Layer) t.Dispose();
        foreach (var t in KeysT) t.Dispose();
        foreach (var t in Values) t.Dispose();
    }

    public void Dispose()
    {
        DisposeViews();
        Layer = KeysT = Values = [];
        cache?.Dispose();
        cache = null;
        disposed = true;
    }
}
