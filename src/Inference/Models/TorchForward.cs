using System.Numerics;
using TorchSharp;
using static ProxyOrleans.Inference.Models.RowKernels;
using static TorchSharp.torch;

namespace ProxyOrleans.Inference.Models;

/// <summary>
/// The fast forward (<see cref="InferenceOptions.BatchInvariant"/> = false, or any non-CPU device): torch/MKL
/// products on all rows of a step at once, attention per session against its cache; one-session decode on CPU takes
/// <see cref="DecodeRow"/>. A row's last bits depend on how many rows share a product (MKL picks its kernels by shape).
/// Layout for CPU speed (measured in docs/model.md): weights pre-transposed [in, out] for mm, q/k/v and gate/up fused,
/// RMSNorm weights folded into the matrix after each norm and 1/sqrt(head_dim) into q (both exact in math), GQA by
/// viewing q as [kv_heads, group, head_dim]. Every matrix is also held as C column chunks [C, in, out/C] (C = 2 at
/// 2+ threads, else 1) so that one bmm keeps C threads busy on a one-row product.
/// </summary>
internal sealed class TorchForward : IForwardPath
{
    /// <param name="Qkv">[hidden, q|k|v] (pre-transposed); <paramref name="QkvChunks"/> the same storage as [C, hidden, out/C].</param>
    /// <param name="GateUp">[C, hidden, 2·inter/C]: chunk c = [gate columns of slice c | up columns of slice c].</param>
    /// <param name="DownT">[C, inter/C, hidden], a transposed view of [C, hidden, inter/C] storage (HF's [out, in] rows).</param>
    private sealed record Layer(Tensor Qkv, Tensor QkvChunks, Tensor? QkvBias, Tensor O, Tensor OChunks, Tensor? OBias,
        Tensor GateUp, Tensor DownT);

    private readonly LlamaConfig config;
    private readonly RopeTable rope;
    private readonly Device device;
    private readonly int heads, kvHeads, headDim, group;
    private readonly bool decodeRow;    // one-session decode step in C# around the big products (see DecodeRow)
    private readonly int tailThreads;   // threads for DecodeRow's MLP tail
    private readonly Tensor embedding;  // [V, hidden]
    private readonly Layer[] layers;
    private readonly Tensor lmHead;     // [blocks, hidden, V/blocks], final norm folded in
    private static readonly Scalar One = 1.0f;

    public TorchForward(LlamaConfig config, IReadOnlyDictionary<string, Tensor> w, RopeTable rope, Device device)
    {
        this.config = config; this.rope = rope; this.device = device;
        heads = config.NumAttentionHeads; kvHeads = config.NumKeyValueHeads; headDim = config.HeadDim; group = heads / kvHeads;
        int chunks = device.type == DeviceType.CPU && torch.get_num_threads() >= 2 ? 2 : 1;
        int lanes = Vector<float>.Count;
        decodeRow = device.type == DeviceType.CPU && Vector.IsHardwareAccelerated
                    && config.IntermediateSize % (chunks * lanes) == 0 && config.HiddenSize % lanes == 0;
        tailThreads = chunks == 1 ? 1 : torch.get_num_threads();

        using var scope = NewDisposeScope();
        using var _ = no_grad();
        int hidden = config.HiddenSize, inter = config.IntermediateSize;
        float qScale = (float)(1.0 / Math.Sqrt(headDim));
        Tensor Keep(Tensor t) => t.contiguous().to(device).DetachFromDisposeScope();
        Tensor KeepTransposed(Tensor t)
        {
            using var stored = Keep(t);
            return stored.transpose(-2, -1).DetachFromDisposeScope();   // the view keeps the storage alive
        }
        static Tensor Columns(Tensor m, int c)
        {
            if (m.shape[1] % c != 0) c = 1;
            return m.view(m.shape[0], c, m.shape[1] / c).permute(1, 0, 2).DetachFromDisposeScope();
        }

        embedding = Keep(w[LlamaCheckpointKeys.Embedding].clone());
        layers = new Layer[config.NumHiddenLayers];
        for (int l = 0; l < layers.Length; l++)
        {
            var k = new LlamaCheckpointKeys.Layer(l);
            var inputNorm = w[k.InputNorm].unsqueeze(1);
            var postNorm = w[k.PostAttentionNorm].unsqueeze(1);
            var qkv = Keep(cat([w[k.Q] * qScale, w[k.K], w[k.V]], 0).t() * inputNorm);
            var o = Keep(w[k.O].t());
            var gate = w[k.Gate].t() * postNorm;   // [hidden, inter]
            var up = w[k.Up].t() * postNorm;
            int ic = inter % chunks == 0 ? chunks : 1;
            var gateUp = cat([gate.reshape(hidden, ic, inter / ic), up.reshape(hidden, ic, inter / ic)], 2).permute(1, 0, 2);
            // down_proj stays [out, in] (HF layout) in memory and is kept as its transposed view: a one-row product with
            // 1376 inputs and 512 outputs reads it ~25% faster that way than pre-transposed [in, out] (MKL, measured here).
            var down = w[k.Down].reshape(hidden, ic, inter / ic).permute(1, 0, 2);   // [C, hidden, inter/C]
            layers[l] = new Layer(qkv, Columns(qkv, chunks),
                config.AttentionBias ? Keep(cat([w[k.QBias] * qScale, w[k.KBias], w[k.VBias]], 0)) : null,
                o, Columns(o, chunks),
                config.OProjBias ? Keep(w[k.OBias].clone()) : null,
                Keep(gateUp), KeepTransposed(down));
        }
        var head = (config.TieWordEmbeddings ? w[LlamaCheckpointKeys.Embedding] : w[LlamaCheckpointKeys.LmHead]).t()
                   * w[LlamaCheckpointKeys.FinalNorm].unsqueeze(1);
        int vc = HeadBlocks(config.VocabSize, chunks);
        lmHead = Keep(head.reshape(hidden, vc, config.VocabSize / vc).permute(1, 0, 2));
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

    /// <summary>Rows [n, in] times column chunks [C, in, out/C] as one bmm ([C, n, out/C]), so C threads share even a one-row product.</summary>
    private static Tensor Chunked(Tensor rows, Tensor chunks) => rows.unsqueeze(0).expand(chunks.shape[0], rows.shape[0], rows.shape[1]).bmm(chunks);

    public void Run(KvCacheSession[] ss, ReadOnlySpan<int> tokens, int[] counts, Span<float> logits, bool everyPosition = false)
    {
        if (decodeRow && ss.Length == 1 && tokens.Length == 1)
        {
            DecodeRow(ss[0], tokens[0], logits);
            return;
        }
        int n = tokens.Length, b = ss.Length, longest = 0;
        var ids = new long[n];
        var positions = new long[n];
        for (int i = 0, r = 0; i < b; i++)
        {
            longest = Math.Max(longest, ss[i].Length + counts[i]);
            for (int t = 0; t < counts[i]; t++, r++) { ids[r] = tokens[r]; positions[r] = ss[i].Length + t; }
        }
        var (cosTable, sinTable) = rope.Covering(longest);

        using var scope = NewDisposeScope();
        using var _ = no_grad();
        Tensor cos, sin;                                                          // [n, 1, hd]
        if (b == 1) (cos, sin) = (cosTable.narrow(0, ss[0].Length, n).unsqueeze(1), sinTable.narrow(0, ss[0].Length, n).unsqueeze(1));
        else
        {
            var pos = tensor(positions, device: device);
            (cos, sin) = (cosTable.index_select(0, pos).unsqueeze(1), sinTable.index_select(0, pos).unsqueeze(1));
        }
        var h = embedding.index_select(0, tensor(ids, device: device));           // residual [n, hidden]
        double eps = config.RmsNormEps;
        int half = headDim / 2;
        for (int l = 0; l < layers.Length; l++)
        {
            var L = layers[l];
            var x = LlamaRMSNorm.Normalize(h, eps);
            var qkv = L.QkvBias is null ? x.mm(L.Qkv) : L.QkvBias.addmm(x, L.Qkv);
            // RoPE in place on the q and k columns: qkv then holds [q | k | v] ready for the cache, so k and v go in
            // with one copy. rotate_half(x) = roll(x, half) with its first half negated.
            var qkv3 = qkv.view(n, heads + 2 * kvHeads, headDim);
            var qk = qkv3.narrow(1, 0, heads + kvHeads);
            var rotated = qk.roll(half, -1);
            rotated.narrow(-1, 0, half).neg_();
            qk.mul_(cos).addcmul_(rotated, sin, One);

            var outs = new Tensor[b];
            for (int i = 0, r = 0; i < b; r += counts[i], i++) outs[i] = Attend(ss[i], l, qkv3, r, counts[i]);
            var attn = b == 1 ? outs[0] : cat(outs, 0);
            h = h.addmm(attn, L.O);                                                  // residual + o_proj in one op
            if (L.OBias is not null) h = h.add_(L.OBias);

            x = LlamaRMSNorm.Normalize(h, eps);
            var gateUp = Chunked(x, L.GateUp).chunk(2, 2);                           // [C, n, inter/C] each
            var act = nn.functional.silu(gateUp[0]).mul_(gateUp[1]);
            h = L.DownT.shape[0] == 1 ? h.addmm(act[0], L.DownT[0]) : h + act.bmm(L.DownT).sum(0L);
        }

        // Only each session's last position needs logits (every position when scoring a prompt).
        var lastRows = new long[b];
        for (int i = 0, r = 0; i < b; i++) { r += counts[i]; lastRows[i] = r - 1; }
        var last = b == n || everyPosition ? h : h.index_select(0, tensor(lastRows, device: device));
        int rows = everyPosition ? n : b;
        var res = Chunked(LlamaRMSNorm.Normalize(last, eps), lmHead);                                         // [C, rows, V/C]
        if (res.device.type != DeviceType.CPU) res = res.cpu();
        // [C, rows, V/C] -> [rows, V] in one copy, read straight from native memory (Tensor.bytes would allocate a LOH array per step).
        res = res.permute(1, 0, 2).contiguous();
        unsafe { new ReadOnlySpan<float>(Data(res), rows * config.VocabSize).CopyTo(logits); }
        GC.KeepAlive(cosTable); GC.KeepAlive(sinTable);
    }

    /// <summary>Writes rows [r, r+t) of k/v into the session's cache at its position and attends q to the whole cache.</summary>
    private Tensor Attend(KvCacheSession s, int l, Tensor qkv, int r, int t)
    {
        int pos = s.Length, len = pos + t;
        var rows = t == qkv.shape[0] ? qkv : qkv.narrow(0, r, t);          // [t, heads + 2*kv, hd], q and k rotated
        var q = rows.narrow(1, 0, heads);                                   // [t, heads, hd]
        var kv = rows.narrow(1, heads, 2 * kvHeads);                        // [t, 2*kv, hd] = [k | v]
        if (t == 1) s.Layer[l].select(2, pos).copy_(kv.view(2, kvHeads, headDim));
        else s.Layer[l].narrow(2, pos, t).copy_(kv.view(t, 2, kvHeads, headDim).permute(1, 2, 0, 3));
        var keysT = s.KeysT[l].narrow(2, 0, len);                           // [kv, hd, len]
        var values = s.Values[l].narrow(1, 0, len);
        if (t == 1)
        {
            // GQA without repeating K/V: query heads of one kv head form the rows of one matmul.
            var scores = q.view(kvHeads, group, headDim).matmul(keysT).softmax(-1);
            return scores.matmul(values).view(1, heads * headDim);
        }
        var qh = q.reshape(t, kvHeads, group, headDim).permute(1, 2, 0, 3).reshape(kvHeads, group * t, headDim);
        var sc = qh.matmul(keysT).view(kvHeads, group, t, len);
        // Causal mask for a chunk appended after `pos` cached tokens: query i sees keys 0..pos+i (bottom-right aligned).
        var mask = full(t, len, float.NegativeInfinity, device: device).triu(pos + 1);
        var p = (sc + mask).softmax(-1).view(kvHeads, group * t, len);
        return p.matmul(values).view(kvHeads, group, t, headDim).permute(2, 0, 1, 3).reshape(t, heads * headDim);
    }

    /// <summary>
    /// One decode token of one session on CPU (the latency path without batch invariance). Per layer only the three
    /// big products go through TorchSharp (qkv, o_proj, gate/up; MKL reads those fastest; at 2+ threads as one bmm
    /// over column chunks); RMSNorm, RoPE, the cache write and attention run in the shared row kernels, and the MLP
    /// tail in <see cref="SwiGluDownRow"/>. The torch path spends ~30 calls per layer on those small ops, ~1.5 ms of
    /// a ~10 ms step for a 40M model (measured with `bench model`).
    /// </summary>
    private unsafe void DecodeRow(KvCacheSession s, int token, Span<float> logits)
    {
        int pos = s.Length, hidden = config.HiddenSize;
        var (cosT, sinT) = rope.Covering(pos + 1);
        float eps = (float)config.RmsNormEps;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var h = empty(1, hidden, device: device);                 // residual [1, hidden]
        var x = empty(1, hidden, device: device);                 // normed [1, hidden]
        var attn = empty(1, heads * headDim, device: device);     // attention [1, heads·hd]
        new ReadOnlySpan<float>(Data(embedding) + (long)token * hidden, hidden).CopyTo(new Span<float>(Data(h), hidden));
        float* cos = Data(cosT) + (long)pos * headDim, sin = Data(sinT) + (long)pos * headDim;
        for (int l = 0; l < layers.Length; l++)
        {
            var L = layers[l];
            RmsNormRow(Data(h), Data(x), hidden, eps);
            // [C, 1, out/C] from the chunked views: for one row the chunks lie in column order already.
            Tensor qkv;
            if (L.QkvChunks.shape[0] == 1) qkv = L.QkvBias is null ? x.mm(L.Qkv) : L.QkvBias.addmm(x, L.Qkv);
            else
            {
                qkv = Chunked(x, L.QkvChunks);
                if (L.QkvBias is not null) qkv.view(1, -1).add_(L.QkvBias);
            }
            AttendRow(Data(qkv), Data(s.Layer[l]), s.Allocated, pos, cos, sin, Data(attn), heads, kvHeads, headDim);
            if (L.OChunks.shape[0] == 1) h.addmm_(attn, L.O);                       // residual + o_proj in one op
            else h.add_(Chunked(attn, L.OChunks).view(1, hidden));
            if (L.OBias is not null) h.add_(L.OBias);
            RmsNormRow(Data(h), Data(x), hidden, eps);
            SwiGluDownRow(Chunked(x, L.GateUp), L.DownT, h, tailThreads);
        }
        RmsNormRow(Data(h), Data(x), hidden, eps);
        // [C, 1, V/C]: for one row the column blocks lie in vocabulary order already.
        var res = Chunked(x, lmHead);
        new ReadOnlySpan<float>(Data(res), config.VocabSize).CopyTo(logits);
        GC.KeepAlive(cosT); GC.KeepAlive(sinT);
    }

    /// <summary>
    /// One decode row of the MLP tail: h += (silu(gate) * up) · down_projᵀ, reading down_proj in its [out, in] layout
    /// as one SIMD dot product per output (4 rows at a time), over the C column chunks, the output rows split between
    /// <paramref name="threads"/> threads. Replaces 4 TorchSharp calls per layer, and reads down_proj faster than MKL's
    /// one-row product does (~17 vs ~14 GB/s on this CPU).
    /// </summary>
    private static unsafe void SwiGluDownRow(Tensor gu, Tensor downT, Tensor h, int threads)
    {
        int chunks = (int)downT.shape[0], part = (int)downT.shape[1], hidden = (int)downT.shape[2];   // a view of [C, hidden, part]
        float* g = Data(gu);                                              // chunk c = [gate slice c | up slice c]
        int inter = chunks * part;
        var act = inter <= 16384 ? stackalloc float[inter] : new float[inter];
        fixed (float* a = act)   // stays valid for the threads below: Parallel.For returns when they are done
        {
            for (int c = 0; c < chunks; c++) SwiGluRow(g + 2 * c * part, g + 2 * c * part + part, a + c * part, part);
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

    public void Dispose()
    {
        embedding.Dispose(); lmHead.Dispose();
        foreach (var l in layers)
        {
            l.Qkv.Dispose(); l.QkvChunks.Dispose(); l.QkvBias?.Dispose(); l.O.Dispose(); l.OChunks.Dispose(); l.OBias?.Dispose();
            l.GateUp.Dispose(); l.DownT.Dispose();
        }
    }
}
