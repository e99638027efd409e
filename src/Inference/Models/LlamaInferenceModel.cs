using System.Runtime.InteropServices;
using System.Numerics;
using ProxyOrleans.Inference.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ProxyOrleans.Inference.Models;

/// <summary>How a model is run: device ("cpu", "cuda", "cuda:1"), CPU threads (0 = leave torch's setting), name.</summary>
public sealed record InferenceOptions
{
    public string Device { get; init; } = "cpu";
    /// <summary>torch.set_num_threads (process-wide). 0 keeps the current setting.</summary>
    public int Threads { get; init; }
    /// <summary>Name the model is served under; defaults to the directory name.</summary>
    public string? Name { get; init; }
}

/// <summary>
/// Llama-family inference with a KV cache, from the same weights as <see cref="LlamaForCausalLM"/>.
/// Weights are rearranged once at load for speed on CPU (see platform-facts.md): stored pre-transposed
/// [in, out] and multiplied with mm/bmm; q/k/v and gate/up fused; RMSNorm weights folded into the matrix
/// that follows each norm and 1/sqrt(head_dim) into q (both exact in math); GQA by viewing q as
/// [kv_heads, group, head_dim] instead of repeating K/V; RoPE (HF rotate_half layout) as
/// x*cos + roll(x, head_dim/2)*sin_signed; at 2+ threads the big matrices are split into 2 chunks so
/// that one bmm keeps both threads busy.
/// </summary>
public sealed class LlamaInferenceModel : ILogitsModel
{
    public LlamaConfig Config { get; }
    public string Name { get; }
    public int VocabSize => Config.VocabSize;
    public int MaxSequenceLength => Config.MaxPositionEmbeddings;
    public long KvBytesPerToken => 2L * Config.NumHiddenLayers * Config.KvDim * sizeof(float);
    public Device Device { get; }

    private readonly int heads, kvHeads, headDim, group, chunks;
    private readonly bool rowPath;                 // one-session decode step in C# around 4 matrix products (see DecodeRow)
    private readonly int rowThreads;               // threads for DecodeRow's own MLP tail (torch's, at 2+ threads)
    private readonly Tensor embed;                 // [V, hidden]
    private readonly Layer[] layers;
    private readonly Tensor lmHead;                // [hidden, V] or [C, hidden, V/C], final norm folded in
    private Tensor cosTable, sinTable;             // [n, head_dim]; sin with its first half negated
    private readonly object ropeGate = new();
    private static readonly Scalar One = 1.0f;
    private bool disposed;

    /// <param name="WqkvChunks">At 2+ threads: Wqkv viewed as [C, hidden, out/C] column chunks (no copy), so that one
    /// decode row's product is one bmm on C threads (DecodeRow); likewise <paramref name="WoChunks"/>.</param>
    private sealed record Layer(Tensor Wqkv, Tensor? Bqkv, Tensor Wo, Tensor? Bo, Tensor WGateUp, Tensor WDown,
        Tensor? WqkvChunks = null, Tensor? WoChunks = null);

    private LlamaInferenceModel(LlamaConfig config, IReadOnlyDictionary<string, Tensor> w, InferenceOptions options, string name)
    {
        Config = config;
        Name = options.Name ?? name;
        Device = ResolveDevice(options.Device, Name);
        if (options.Threads > 0) torch.set_num_threads(options.Threads);
        heads = config.NumAttentionHeads; kvHeads = config.NumKeyValueHeads; headDim = config.HeadDim;
        group = heads / kvHeads;
        chunks = Device.type == DeviceType.CPU && torch.get_num_threads() >= 2 ? 2 : 1;
        int lanes = Vector<float>.Count;   // 8 with AVX2 or AVX-512, 4 with NEON
        rowPath = Device.type == DeviceType.CPU && Vector.IsHardwareAccelerated
                  && config.IntermediateSize % (chunks * lanes) == 0 && config.HiddenSize % lanes == 0 && headDim % lanes == 0;
        rowThreads = chunks == 1 ? 1 : torch.get_num_threads();

        using var scope = NewDisposeScope();
        using var _ = no_grad();
        int hidden = config.HiddenSize, inter = config.IntermediateSize;
        float qScale = (float)(1.0 / Math.Sqrt(headDim));
        Tensor Keep(Tensor t) => t.contiguous().to(Device).DetachFromDisposeScope();
        Tensor KeepTransposed(Tensor t)
        {
            using var stored = Keep(t);
            return stored.transpose(-2, -1).DetachFromDisposeScope();   // the view keeps the storage alive
        }

        embed = Keep(w["model.embed_tokens.weight"].clone());
        layers = new Layer[config.NumHiddenLayers];
        for (int l = 0; l < layers.Length; l++)
        {
            string p = $"model.layers.{l}.";
            var g1 = w[p + "input_layernorm.weight"].unsqueeze(1);
            var g2 = w[p + "post_attention_layernorm.weight"].unsqueeze(1);
            var wqkv = cat([w[p + "self_attn.q_proj.weight"] * qScale, w[p + "self_attn.k_proj.weight"], w[p + "self_attn.v_proj.weight"]], 0);
            Tensor? bqkv = config.AttentionBias
                ? cat([w[p + "self_attn.q_proj.bias"] * qScale, w[p + "self_attn.k_proj.bias"], w[p + "self_attn.v_proj.bias"]], 0)
                : null;
            var gate = w[p + "mlp.gate_proj.weight"].t() * g2;   // [hidden, inter]
            var up = w[p + "mlp.up_proj.weight"].t() * g2;
            int ic = inter % chunks == 0 ? chunks : 1;
            // Chunk c = [gate columns of slice c | up columns of slice c], so silu(gate)*up of chunk c feeds rows of slice c of down_proj.
            var gateUp = cat([gate.reshape(hidden, ic, inter / ic), up.reshape(hidden, ic, inter / ic)], 2).permute(1, 0, 2);
            // down_proj stays [out, in] (HF layout) in memory and is kept as its transposed view: a one-row product with
            // 1376 inputs and 512 outputs reads it ~25% faster that way than pre-transposed [in, out] (MKL, measured here).
            var down = w[p + "mlp.down_proj.weight"].reshape(hidden, ic, inter / ic).permute(1, 0, 2);   // [C, hidden, inter/C]
            layers[l] = new Layer(
                Keep(wqkv.t() * g1),
                bqkv is null ? null : Keep(bqkv),
                Keep(w[p + "self_attn.o_proj.weight"].t()),
                config.OProjBias ? Keep(w[p + "self_attn.o_proj.bias"].clone()) : null,
                Keep(ic == 1 ? gateUp.squeeze(0) : gateUp),   // 2-D when not chunked: plain mm
                KeepTransposed(ic == 1 ? down.squeeze(0) : down));   // [inter, hidden] or [C, inter/C, hidden] view
            if (chunks > 1)
            {
                static Tensor? Columns(Tensor m, int c) =>
                    m.shape[1] % c == 0 ? m.view(m.shape[0], c, m.shape[1] / c).permute(1, 0, 2).DetachFromDisposeScope() : null;
                layers[l] = layers[l] with { WqkvChunks = Columns(layers[l].Wqkv, chunks), WoChunks = Columns(layers[l].Wo, chunks) };
            }
        }
        var head = (config.TieWordEmbeddings ? w["model.embed_tokens.weight"] : w["lm_head.weight"]).t() * w["model.norm.weight"].unsqueeze(1);
        int vc = HeadBlocks(config.VocabSize, chunks);
        lmHead = Keep(vc == 1 ? head : head.reshape(hidden, vc, config.VocabSize / vc).permute(1, 0, 2));
        (cosTable, sinTable) = RopeTables(Math.Min(config.MaxPositionEmbeddings, 4096));
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
        var expected = ExpectedShapes(config);
        var weights = HfCheckpoint.Load(modelDir, expected, config.TieWordEmbeddings ? new HashSet<string> { "lm_head.weight" } : null);
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

    /// <summary>HF tensor names and shapes for a config: the checkpoint must hold exactly these.</summary>
    public static Dictionary<string, long[]> ExpectedShapes(LlamaConfig c)
    {
        long h = c.HiddenSize, q = c.NumAttentionHeads * c.HeadDim, kv = c.KvDim, i = c.IntermediateSize;
        var s = new Dictionary<string, long[]> { ["model.embed_tokens.weight"] = [c.VocabSize, h], ["model.norm.weight"] = [h] };
        if (!c.TieWordEmbeddings) s["lm_head.weight"] = [c.VocabSize, h];
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            string p = $"model.layers.{l}.";
            s[p + "input_layernorm.weight"] = [h];
            s[p + "post_attention_layernorm.weight"] = [h];
            s[p + "self_attn.q_proj.weight"] = [q, h];
            s[p + "self_attn.k_proj.weight"] = [kv, h];
            s[p + "self_attn.v_proj.weight"] = [kv, h];
            s[p + "self_attn.o_proj.weight"] = [h, q];
            if (c.AttentionBias)
            {
                s[p + "self_attn.q_proj.bias"] = [q];
                s[p + "self_attn.k_proj.bias"] = [kv];
                s[p + "self_attn.v_proj.bias"] = [kv];
            }
            if (c.OProjBias) s[p + "self_attn.o_proj.bias"] = [h];
            s[p + "mlp.gate_proj.weight"] = [i, h];
            s[p + "mlp.up_proj.weight"] = [i, h];
            s[p + "mlp.down_proj.weight"] = [h, i];
        }
        return s;
    }

    public IModelSession CreateSession(int capacity)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (capacity <= 0 || capacity > MaxSequenceLength)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity,
                $"A session of model '{Name}' holds 1..{MaxSequenceLength} tokens (max_position_embeddings).");
        return new Session(this, capacity);
    }

    public void StepBatch(IReadOnlyList<IModelSession> sessions, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        if (tokens.Length != sessions.Count)
            throw new ArgumentException($"{sessions.Count} sessions but {tokens.Length} tokens: one token per session.", nameof(tokens));
        if (logits.Length < sessions.Count * VocabSize)
            throw new ArgumentException($"logits holds {logits.Length} floats; {sessions.Count} sessions need {sessions.Count * VocabSize}.", nameof(logits));
        if (sessions.Count == 0) return;
        var own = new Session[sessions.Count];
        for (int i = 0; i < own.Length; i++)
        {
            own[i] = sessions[i] as Session is { } s && s.Model == this
                ? s : throw new ArgumentException($"Session {i} does not belong to model '{Name}'.", nameof(sessions));
            if (Array.IndexOf(own, own[i], 0, i) >= 0)
                throw new ArgumentException($"Session {i} appears twice in one batch.", nameof(sessions));
        }
        Forward(own, tokens, Enumerable.Repeat(1, own.Length).ToArray(), logits);
    }

    /// <summary>
    /// One forward over several sessions: session i appends counts[i] tokens (taken in order from
    /// <paramref name="tokens"/>) and gets the logits of its last position in row i of <paramref name="logits"/>.
    /// Matrix products run on all rows at once; attention runs per session against its own cache.
    /// </summary>
    private void Forward(Session[] ss, ReadOnlySpan<int> tokens, int[] counts, Span<float> logits)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (rowPath && ss.Length == 1 && tokens.Length == 1)
        {
            DecodeRow(ss[0], tokens[0], logits);
            return;
        }
        int longest = 0;
        for (int i = 0; i < ss.Length; i++)
        {
            ss[i].Reserve(counts[i]); // all checks before any cache is written
            longest = Math.Max(longest, ss[i].Length + counts[i]);
        }
        EnsureRope(longest);

        int n = tokens.Length, b = ss.Length;
        var ids = new long[n];
        var positions = new long[n];
        for (int i = 0, r = 0; i < b; i++)
            for (int t = 0; t < counts[i]; t++, r++) { ids[r] = tokens[r]; positions[r] = ss[i].Length + t; }

        using var scope = NewDisposeScope();
        using var _ = no_grad();
        Tensor cos, sin;
        if (b == 1)
        {
            cos = cosTable.narrow(0, ss[0].Length, n).unsqueeze(1);
            sin = sinTable.narrow(0, ss[0].Length, n).unsqueeze(1);
        }
        else
        {
            var pos = tensor(positions, device: Device);
            cos = cosTable.index_select(0, pos).unsqueeze(1);
            sin = sinTable.index_select(0, pos).unsqueeze(1);
        }

        var h = embed.index_select(0, tensor(ids, device: Device));             // [n, hidden]
        double eps = Config.RmsNormEps;
        for (int l = 0; l < layers.Length; l++)
        {
            var L = layers[l];
            var x = RmsNorm(h, eps);
            var qkv = L.Bqkv is null ? x.mm(L.Wqkv) : L.Bqkv.addmm(x, L.Wqkv);
            // RoPE (rotate_half layout) in place on the q and k columns: qkv then holds [q | k | v] ready for the
            // cache, so k and v go in with one copy (fewer TorchSharp calls per step).
            var qkv3 = qkv.view(n, heads + 2 * kvHeads, headDim);
            var qk = qkv3.narrow(1, 0, heads + kvHeads);
            var rolled = qk.roll(headDim / 2, -1);
            qk.mul_(cos).addcmul_(rolled, sin, One);

            Tensor attn;
            if (b == 1) attn = Attend(ss[0], l, qkv3, 0, n);
            else
            {
                var outs = new Tensor[b];
                for (int i = 0, r = 0; i < b; r += counts[i], i++) outs[i] = Attend(ss[i], l, qkv3, r, counts[i]);
                attn = cat(outs, 0);
            }
            h = h.addmm(attn, L.Wo);                                                 // residual + o_proj in one op
            if (L.Bo is not null) h = h.add_(L.Bo);

            x = RmsNorm(h, eps);
            if (L.WGateUp.dim() == 2)
            {
                var gateUp = x.mm(L.WGateUp).chunk(2, 1);                           // [n, 2*inter] = [gate | up]
                h = h.addmm(nn.functional.silu(gateUp[0]).mul_(gateUp[1]), L.WDown);
            }
            else
            {
                // Two chunks in one bmm keep two threads busy on one-row products (platform-facts.md).
                var gu = Chunked(x, L.WGateUp);                                      // [C, n, 2*inter/C]
                var gateUp = gu.chunk(2, 2);
                var act = nn.functional.silu(gateUp[0]).mul_(gateUp[1]);
                h = h + act.bmm(L.WDown).sum(0L);                                    // [C, n, hidden] summed over chunks
            }
        }

        // Only each session's last position needs logits.
        Tensor last = b == n ? h : h.index_select(0, tensor(LastRows(counts), device: Device));
        var xs = RmsNorm(last, eps);
        var res = lmHead.dim() == 2 ? xs.mm(lmHead).unsqueeze(0)                             // [1, b, V]
            : Chunked(xs, lmHead);                                                              // [C, b, V/C]
        if (res.device.type != DeviceType.CPU) res = res.cpu();
        // [C, b, V/C] -> [b, V] in one copy, read straight from native memory (Tensor.bytes would allocate a LOH array per step).
        res = res.permute(1, 0, 2).contiguous();
        unsafe
        {
            using var storage = res.storage<float>();
            new ReadOnlySpan<float>((float*)storage.data_ptr() + res.storage_offset(), b * VocabSize).CopyTo(logits);
        }

        for (int i = 0; i < b; i++) ss[i].Length += counts[i];
    }

    /// <summary>
    /// Column blocks for the lm_head product: one bmm over blocks of at most 8192 columns keeps each block's
    /// output in cache, measured ~35% faster than one mm over 32000 columns at 1 thread; at least `chunks` blocks
    /// so that several threads share one-row products.
    /// </summary>
    private static int HeadBlocks(int vocab, int chunks)
    {
        for (int c = Math.Max(1, chunks); c <= 64; c++)
            if (vocab % c == 0 && vocab / c <= 8192) return c;
        return vocab % chunks == 0 ? chunks : 1;
    }

    /// <summary>
    /// One decode token of one session on CPU (the latency path of every generation). Per layer only the three big
    /// products go through TorchSharp (qkv, o_proj, gate/up; MKL reads those fastest; at 2+ threads as one bmm over
    /// column chunks); RMSNorm, RoPE, the cache write and attention run in C# on the tensors' memory, and so does the
    /// MLP tail (its rows split between the threads). The torch path spends
    /// ~30 calls per layer on those small ops, ~1.5 ms of a ~10 ms step for a 40M model (measured with `bench model`).
    /// Same math as <see cref="Forward"/>; InferenceModelTests and the llama.cpp comparison decode through here.
    /// </summary>
    private unsafe void DecodeRow(Session s, int token, Span<float> logits)
    {
        s.Reserve(1);
        int pos = s.Length, hidden = Config.HiddenSize;
        EnsureRope(pos + 1);
        var (cosT, sinT) = (cosTable, sinTable);   // one consistent pair even if another session grows the tables
        float eps = (float)Config.RmsNormEps;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var h = empty(1, hidden, device: Device);
        var x = empty(1, hidden, device: Device);
        var attn = empty(1, heads * headDim, device: Device);
        new ReadOnlySpan<float>(Data(embed) + (long)token * hidden, hidden).CopyTo(new Span<float>(Data(h), hidden));
        float* cos = Data(cosT) + (long)pos * headDim, sin = Data(sinT) + (long)pos * headDim;
        for (int l = 0; l < layers.Length; l++)
        {
            var L = layers[l];
            RmsNormRow(Data(h), Data(x), hidden, eps);
            // [C, 1, out/C] from the chunked views: for one row the chunks lie in column order already.
            var qkv = L.WqkvChunks is null ? (L.Bqkv is null ? x.mm(L.Wqkv) : L.Bqkv.addmm(x, L.Wqkv))
                : Chunked(x, L.WqkvChunks);
            if (L.WqkvChunks is not null && L.Bqkv is not null) qkv.view(1, -1).add_(L.Bqkv);
            AttendRow(Data(qkv), Data(s.KV[l]), s.Allocated, pos, cos, sin, Data(attn));
            if (L.WoChunks is null) h.addmm_(attn, L.Wo);                           // residual + o_proj in one op
            else h.add_(Chunked(attn, L.WoChunks).view(1, hidden));
            if (L.Bo is not null) h.add_(L.Bo);
            RmsNormRow(Data(h), Data(x), hidden, eps);
            var gu = L.WGateUp.dim() == 2 ? x.mm(L.WGateUp) : Chunked(x, L.WGateUp);
            AddSwiGluDown(gu, L.WDown, h, rowThreads);
        }
        RmsNormRow(Data(h), Data(x), hidden, eps);
        // [C, 1, V/C]: for one row the column blocks lie in vocabulary order already.
        var res = lmHead.dim() == 2 ? x.mm(lmHead) : Chunked(x, lmHead);
        new ReadOnlySpan<float>(Data(res), VocabSize).CopyTo(logits);
        GC.KeepAlive(cosT); GC.KeepAlive(sinT);    // replaced tables are freed by the GC: not before this step is done
        s.Length++;
    }

    /// <summary>Rows [n, in] times column chunks [C, in, out/C] as one bmm ([C, n, out/C]), so C threads share even a one-row product.</summary>
    private static Tensor Chunked(Tensor rows, Tensor chunks) => rows.unsqueeze(0).expand(chunks.shape[0], rows.shape[0], rows.shape[1]).bmm(chunks);

    /// <summary>y = x / sqrt(mean(x²) + eps) for one row (the norm's weight is folded into the next matrix).</summary>
    private static unsafe void RmsNormRow(float* x, float* y, int n, float eps)
    {
        Vector<float> acc = default;
        for (int i = 0; i < n; i += Vector<float>.Count) { var v = Vector.Load(x + i); acc = Vector.FusedMultiplyAdd(v, v, acc); }
        var scale = new Vector<float>(1f / MathF.Sqrt(Vector.Sum(acc) / n + eps));
        for (int i = 0; i < n; i += Vector<float>.Count) (Vector.Load(x + i) * scale).Store(y + i);
    }

    /// <summary>
    /// One query row: RoPE on its q and k heads (in place, rotate_half layout), k and v written into the cache at
    /// <paramref name="pos"/>, then per query head softmax(q·Kᵀ)·V over positions 0..pos of its kv head (GQA).
    /// <paramref name="cache"/> is one layer's [2, kv_heads, allocated, head_dim]; 1/sqrt(head_dim) is folded into q.
    /// </summary>
    private unsafe void AttendRow(float* qkv, float* cache, int allocated, int pos, float* cos, float* sin, float* output)
    {
        int hd = headDim, half = hd / 2, len = pos + 1;
        var rotated = stackalloc float[hd];
        for (int head = 0; head < heads + kvHeads; head++)
        {
            float* v = qkv + head * hd;
            for (int i = 0; i < hd; i++) rotated[i] = v[i] * cos[i] + v[(i + half) % hd] * sin[i];
            new ReadOnlySpan<float>(rotated, hd).CopyTo(new Span<float>(v, hd));
        }
        long plane = (long)allocated * hd;           // one kv head's rows
        float* keys = cache, values = cache + kvHeads * plane;
        for (int g = 0; g < kvHeads; g++)
        {
            new ReadOnlySpan<float>(qkv + (heads + g) * hd, hd).CopyTo(new Span<float>(keys + g * plane + (long)pos * hd, hd));
            new ReadOnlySpan<float>(qkv + (heads + kvHeads + g) * hd, hd).CopyTo(new Span<float>(values + g * plane + (long)pos * hd, hd));
        }
        var scores = len <= 4096 ? stackalloc float[len] : new float[len];
        for (int head = 0; head < heads; head++)
        {
            float* q = qkv + head * hd, k = keys + (head / group) * plane, val = values + (head / group) * plane;
            float max = float.NegativeInfinity;
            for (int t = 0; t < len; t++)
            {
                float* kt = k + (long)t * hd;
                Vector<float> acc = default;
                for (int i = 0; i < hd; i += Vector<float>.Count) acc = Vector.FusedMultiplyAdd(Vector.Load(q + i), Vector.Load(kt + i), acc);
                scores[t] = Vector.Sum(acc);
                max = MathF.Max(max, scores[t]);
            }
            float sum = 0;
            for (int t = 0; t < len; t++) sum += scores[t] = MathF.Exp(scores[t] - max);
            // One pass over the value rows, accumulating into the (L1-resident) output row.
            float* o = output + head * hd;
            new Span<float>(o, hd).Clear();
            for (int t = 0; t < len; t++)
            {
                var p = new Vector<float>(scores[t]);
                float* vt = val + (long)t * hd;
                for (int i = 0; i < hd; i += Vector<float>.Count) Vector.FusedMultiplyAdd(p, Vector.Load(vt + i), Vector.Load(o + i)).Store(o + i);
            }
            var inverse = new Vector<float>(1f / sum);
            for (int i = 0; i < hd; i += Vector<float>.Count) (Vector.Load(o + i) * inverse).Store(o + i);
        }
    }

    private static long[] LastRows(int[] counts)
    {
        var rows = new long[counts.Length];
        for (int i = 0, r = 0; i < counts.Length; i++) { r += counts[i]; rows[i] = r - 1; }
        return rows;
    }

    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSTensor_data(IntPtr tensor);   // TorchSharp's own native export: at::Tensor::data_ptr()

    private static unsafe float* Data(Tensor t) => (float*)THSTensor_data(t.Handle);

    /// <summary>
    /// One decode row of the MLP tail in C#: h += (silu(gate) * up) · down_projᵀ, reading down_proj in its [out, in]
    /// layout as one SIMD dot product per output (4 rows at a time), over the C column chunks of the 2+-thread layout
    /// (C = 1 at 1 thread), the output rows split between <paramref name="threads"/> threads. Replaces 4 TorchSharp
    /// calls per layer, and reads down_proj faster than MKL's one-row product does (~17 vs ~14 GB/s on this CPU).
    /// </summary>
    private static unsafe void AddSwiGluDown(Tensor gu, Tensor downT, Tensor h, int threads)
    {
        int chunks = downT.dim() == 3 ? (int)downT.shape[0] : 1;
        int part = (int)downT.shape[^2], hidden = (int)downT.shape[^1];   // a view: its data is [C, hidden, part] storage
        float* g = Data(gu);                                              // chunk c = [gate slice c | up slice c]
        int inter = chunks * part;
        var act = inter <= 16384 ? stackalloc float[inter] : new float[inter];
        fixed (float* a = act)   // stays valid for the threads below: Parallel.For returns when they are done
        {
            for (int c = 0; c < chunks; c++)
                for (int i = 0; i < part; i++)
                {
                    float gate = g[2 * c * part + i];
                    a[c * part + i] = gate / (1f + MathF.Exp(-gate)) * g[2 * c * part + part + i];
                }
            nint w = (nint)Data(downT), y = (nint)Data(h), av = (nint)a;
            if (threads <= 1) { DotRows((float*)w, (float*)av, (float*)y, 0, hidden, part, chunks, hidden); return; }
            int block = (hidden / threads + 3) & ~3;
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
                DotRows((float*)w, (float*)av, (float*)y, Math.Min(hidden, t * block), Math.Min(hidden, (t + 1) * block), part, chunks, hidden));
        }
    }

    /// <summary>y[j] += Σ_c down_c[j] · act_c for rows j in [from, to); down is [chunks, hidden, part] row-major.</summary>
    private static unsafe void DotRows(float* w, float* a, float* y, int from, int to, int part, int chunks, int hidden)
    {
        int j = from;
        for (; j + 4 <= to; j += 4)
        {
            Vector<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (int c = 0; c < chunks; c++)
            {
                float* r0 = w + ((long)c * hidden + j) * part, r1 = r0 + part, r2 = r1 + part, r3 = r2 + part, ac = a + c * part;
                for (int i = 0; i < part; i += Vector<float>.Count)
                {
                    var v = Vector.Load(ac + i);
                    s0 = Vector.FusedMultiplyAdd(Vector.Load(r0 + i), v, s0);
                    s1 = Vector.FusedMultiplyAdd(Vector.Load(r1 + i), v, s1);
                    s2 = Vector.FusedMultiplyAdd(Vector.Load(r2 + i), v, s2);
                    s3 = Vector.FusedMultiplyAdd(Vector.Load(r3 + i), v, s3);
                }
            }
            y[j] += Vector.Sum(s0); y[j + 1] += Vector.Sum(s1); y[j + 2] += Vector.Sum(s2); y[j + 3] += Vector.Sum(s3);
        }
        for (; j < to; j++)
        {
            Vector<float> s0 = default;
            for (int c = 0; c < chunks; c++)
            {
                float* r = w + ((long)c * hidden + j) * part, ac = a + c * part;
                for (int i = 0; i < part; i += Vector<float>.Count) s0 = Vector.FusedMultiplyAdd(Vector.Load(r + i), Vector.Load(ac + i), s0);
            }
            y[j] += Vector.Sum(s0);
        }
    }

    private static Tensor RmsNorm(Tensor x, double eps) => x * x.square().mean([-1L], keepdim: true).add_(eps).rsqrt_();

    /// <summary>Writes rows [r, r+t) of k/v into the session's cache at its position and attends q to the whole cache.</summary>
    private Tensor Attend(Session s, int l, Tensor qkv, int r, int t)
    {
        int pos = s.Length, len = pos + t;
        var rows = t == qkv.shape[0] ? qkv : qkv.narrow(0, r, t);          // [t, heads + 2*kv, hd], q and k rotated
        var q = rows.narrow(1, 0, heads);                                   // [t, heads, hd]
        var kv = rows.narrow(1, heads, 2 * kvHeads);                        // [t, 2*kv, hd] = [k | v]
        if (t == 1) s.KV[l].select(2, pos).copy_(kv.view(2, kvHeads, headDim));
        else s.KV[l].narrow(2, pos, t).copy_(kv.view(t, 2, kvHeads, headDim).permute(1, 2, 0, 3));
        var keysT = s.KT[l].narrow(2, 0, len);                              // [kv, hd, len]
        var values = s.V[l].narrow(1, 0, len);
        if (t == 1)
        {
            // GQA without repeating K/V: query heads of one kv head form the rows of one matmul.
            var scores = q.view(kvHeads, group, headDim).matmul(keysT).softmax(-1);
            return scores.matmul(values).view(1, heads * headDim);
        }
        var qh = q.reshape(t, kvHeads, group, headDim).permute(1, 2, 0, 3).reshape(kvHeads, group * t, headDim);
        var sc = qh.matmul(keysT).view(kvHeads, group, t, len);
        // Causal mask for a chunk appended after `pos` cached tokens: query i sees keys 0..pos+i (bottom-right aligned).
        var mask = full(t, len, float.NegativeInfinity, device: Device).triu(pos + 1);
        var p = (sc + mask).softmax(-1).view(kvHeads, group * t, len);
        return p.matmul(values).view(kvHeads, group, t, headDim).permute(2, 0, 1, 3).reshape(t, heads * headDim);
    }

    private (Tensor cos, Tensor sin) RopeTables(int n)
    {
        var invFreq = Config.RopeInverseFrequencies();
        int half = invFreq.Length;
        var cos = new float[n * headDim];
        var sin = new float[n * headDim];
        for (int p = 0; p < n; p++)
            for (int i = 0; i < half; i++)
            {
                double a = p * invFreq[i];
                cos[p * headDim + i] = cos[p * headDim + half + i] = (float)Math.Cos(a);
                float s = (float)Math.Sin(a);
                sin[p * headDim + i] = -s;   // roll(x, half)[i] = x[i+half] enters with a minus: rotate_half
                sin[p * headDim + half + i] = s;
            }
        return (tensor(cos, new long[] { n, headDim }, device: Device).DetachFromDisposeScope(),
                tensor(sin, new long[] { n, headDim }, device: Device).DetachFromDisposeScope());
    }

    private void EnsureRope(int n)
    {
        if (n <= cosTable.shape[0]) return;
        lock (ropeGate)
        {
            if (n <= cosTable.shape[0]) return;
            int size = (int)Math.Min(Math.Max(n, 2 * cosTable.shape[0]), MaxSequenceLength);
            var (c, s) = RopeTables(size);
            // Old tables may be in use by a concurrent step on another session: let the GC free them.
            (cosTable, sinTable) = (c, s);
        }
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        embed.Dispose(); lmHead.Dispose(); cosTable.Dispose(); sinTable.Dispose();
        foreach (var l in layers)
        {
            l.Wqkv.Dispose(); l.Bqkv?.Dispose(); l.Wo.Dispose(); l.Bo?.Dispose(); l.WGateUp.Dispose(); l.WDown.Dispose();
            l.WqkvChunks?.Dispose(); l.WoChunks?.Dispose();
        }
    }

    /// <summary>A sequence's KV cache: one [L, 2, kv_heads, n, head_dim] tensor (k and v of a position written by one copy), grown by doubling up to the capacity.</summary>
    private sealed class Session(LlamaInferenceModel model, int capacity) : IModelSession
    {
        public LlamaInferenceModel Model => model;
        public int Length { get; set; }
        /// <summary>Positions the cache tensor holds room for (its third dimension).</summary>
        public int Allocated => allocated;
        public Tensor[] KT = [], V = [], KV = [];   // per layer views: k transposed [kv, hd, n], v [kv, n, hd], both [2, kv, n, hd]
        private Tensor? cache;
        private int allocated;

        public void Append(ReadOnlySpan<int> tokens, Span<float> lastLogits)
        {
            if (tokens.Length == 0) throw new ArgumentException("Append needs at least one token.", nameof(tokens));
            if (lastLogits.Length < model.VocabSize)
                throw new ArgumentException($"lastLogits holds {lastLogits.Length} floats; the model's vocabulary has {model.VocabSize}.", nameof(lastLogits));
            foreach (int id in tokens)
                if ((uint)id >= (uint)model.VocabSize)
                    throw new ArgumentOutOfRangeException(nameof(tokens), id, $"Token id {id} is outside the vocabulary of model '{model.Name}' (0..{model.VocabSize - 1}).");
            model.Forward([this], tokens, [tokens.Length], lastLogits);
        }

        /// <summary>Makes room for <paramref name="count"/> more tokens, or throws before anything is written.</summary>
        public void Reserve(int count)
        {
            ObjectDisposedException.ThrowIf(cache is null && allocated < 0, this);
            if (Length + count > capacity)
                throw new ContextLengthExceededException(
                    $"Model '{model.Name}': the session holds {Length} tokens and {count} more would exceed its capacity of {capacity} " +
                    $"(max_position_embeddings {model.MaxSequenceLength}). Shorten the prompt or lower max_tokens.");
            if (Length + count <= allocated) return;
            int size = Math.Min(capacity, Math.Max(Length + count, Math.Max(64, allocated * 2)));
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
            allocated = size;
            KT = new Tensor[c.NumHiddenLayers];
            V = new Tensor[c.NumHiddenLayers];
            KV = new Tensor[c.NumHiddenLayers];
            for (int l = 0; l < KT.Length; l++)
            {
                KV[l] = cache[l].DetachFromDisposeScope();
                using (var k = cache[l, 0]) KT[l] = k.transpose(1, 2).DetachFromDisposeScope();
                V[l] = cache[l, 1].DetachFromDisposeScope();
            }
        }

        private void DisposeViews()
        {
            foreach (var t in KT) t.Dispose();
            foreach (var t in V) t.Dispose();
            foreach (var t in KV) t.Dispose();
        }

        public void Dispose()
        {
            DisposeViews();
            KT = V = KV = [];
            cache?.Dispose();
            cache = null;
            allocated = -1;
        }
    }
}
