using System.Buffers;
using static ProxyOrleans.Inference.Models.RowKernels;
using static TorchSharp.torch;

namespace ProxyOrleans.Inference.Models;

/// <summary>
/// The batch-invariant forward (<see cref="InferenceOptions.BatchInvariant"/>), all in C# on the weights' memory,
/// in the order data flows (as llama2.c's run.c): embedding row → per layer [RMSNorm → qkv → RoPE, cache write,
/// attention per query row → o_proj + residual → RMSNorm → gate/up → SwiGLU → down + residual] → final RMSNorm →
/// lm_head for each session's last row. Products are <see cref="RowMatMul"/> (one reduction order per output), the
/// rest row by row, so a row's logits are the same bits whether it is one decode token, one row of a prefill chunk
/// or one session among many in a batch. CPU only.
/// </summary>
internal sealed unsafe class RowForward : IForwardPath
{
    /// <summary>One decoder layer, matrices from HF's [out, in] layout packed into <see cref="PanelMatrix"/> panels:
    /// RMSNorm weights folded into the columns of the matrix after each norm, 1/sqrt(head_dim) into the q rows.</summary>
    private sealed record Layer(
        PanelMatrix Qkv,     // [heads·hd + 2·kv·hd, hidden] = [q | k | v] rows
        Tensor? QkvBias,     // [heads·hd + 2·kv·hd]
        PanelMatrix O,       // [hidden, heads·hd]
        Tensor? OBias,       // [hidden]
        PanelMatrix GateUp,  // [2·inter, hidden] = [gate | up] rows
        PanelMatrix Down);   // [hidden, inter]

    /// <summary>Rows one call should hold at most: a longer prompt is run in pieces (same bits, bounded buffers).</summary>
    public const int MaxRows = 256;

    private readonly LlamaConfig config;
    private readonly RopeTable rope;
    private readonly int threads;
    private readonly Tensor embedding;   // [V, hidden]
    private readonly Layer[] layers;
    private readonly PanelMatrix lmHead; // [V, hidden], final norm folded in

    public RowForward(LlamaConfig config, IReadOnlyDictionary<string, Tensor> w, RopeTable rope, int threads)
    {
        this.config = config;
        this.rope = rope;
        this.threads = Math.Max(1, threads);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        static Tensor Keep(Tensor t) => t.contiguous().DetachFromDisposeScope();
        // Each matrix is packed inside its own scope, so its [out, in] form is freed before the next one is made:
        // loading never holds two copies of the weights.
        static PanelMatrix Packed(Func<Tensor> weight)
        {
            using var inner = NewDisposeScope();
            return PanelMatrix.Pack(weight());
        }
        float qScale = (float)(1.0 / Math.Sqrt(config.HeadDim));
        embedding = Keep(w[LlamaCheckpointKeys.Embedding].clone());
        layers = new Layer[config.NumHiddenLayers];
        for (int l = 0; l < layers.Length; l++)
        {
            var k = new LlamaCheckpointKeys.Layer(l);
            var inputNorm = w[k.InputNorm].unsqueeze(0);
            var postNorm = w[k.PostAttentionNorm].unsqueeze(0);
            layers[l] = new Layer(
                Packed(() => cat([w[k.Q] * qScale, w[k.K], w[k.V]], 0) * inputNorm),
                config.AttentionBias ? Keep(cat([w[k.QBias] * qScale, w[k.KBias], w[k.VBias]], 0)) : null,
                Packed(() => w[k.O]),
                config.OProjBias ? Keep(w[k.OBias].clone()) : null,
                Packed(() => cat([w[k.Gate] * postNorm, w[k.Up] * postNorm], 0)),
                Packed(() => w[k.Down]));
        }
        var head = config.TieWordEmbeddings ? w[LlamaCheckpointKeys.Embedding] : w[LlamaCheckpointKeys.LmHead];
        lmHead = Packed(() => head * w[LlamaCheckpointKeys.FinalNorm].unsqueeze(0));
    }

    public void Run(KvCacheSession[] sessions, ReadOnlySpan<int> tokens, int[] counts, Span<float> logits, bool everyPosition = false)
    {
        int n = tokens.Length, b = sessions.Length, longest = 0;
        for (int i = 0; i < b; i++) longest = Math.Max(longest, sessions[i].Length + counts[i]);
        var (cosTable, sinTable) = rope.Covering(longest);   // one consistent pair even if another session grows the tables
        int hidden = config.HiddenSize, inter = config.IntermediateSize, hd = config.HeadDim;
        int heads = config.NumAttentionHeads, kvHeads = config.NumKeyValueHeads, qDim = heads * hd, qkvDim = qDim + 2 * kvHeads * hd;
        float eps = (float)config.RmsNormEps;

        // Activations, by role: residual [n, hidden], normed [n, hidden], qkv [n, qkvDim], attention [n, qDim],
        // gateUp [n, 2·inter], activation [n, inter], lastNormed [scored, hidden] (each session's last row, or every row).
        int scored = everyPosition ? n : b;
        int size = n * (2 * hidden + qkvDim + qDim + 3 * inter) + scored * hidden;
        var buffer = ArrayPool<float>.Shared.Rent(size);
        try
        {
            fixed (float* start = buffer)
            fixed (float* output = logits)
            {
                float* residual = start, normed = residual + n * hidden, qkv = normed + n * hidden, attention = qkv + n * qkvDim;
                float* gateUp = attention + n * qDim, activation = gateUp + n * 2 * inter, lastNormed = activation + n * inter;
                float* embed = Data(embedding), cos = Data(cosTable), sin = Data(sinTable);
                for (int r = 0; r < n; r++)
                    new ReadOnlySpan<float>(embed + (long)tokens[r] * hidden, hidden).CopyTo(new Span<float>(residual + r * hidden, hidden));

                for (int l = 0; l < layers.Length; l++)
                {
                    var L = layers[l];
                    for (int r = 0; r < n; r++) RmsNormRow(residual + r * hidden, normed + r * hidden, hidden, eps);
                    RowMatMul.Multiply(normed, n, L.Qkv, Bias(L.QkvBias), qkv, accumulate: false, threads);
                    for (int i = 0, r = 0; i < b; i++)
                    {
                        var s = sessions[i];
                        float* cache = Data(s.Layer[l]);
                        for (int t = 0; t < counts[i]; t++, r++)
                        {
                            long pos = s.Length + t;
                            AttendRow(qkv + r * qkvDim, cache, s.Allocated, (int)pos, cos + pos * hd, sin + pos * hd,
                                attention + r * qDim, heads, kvHeads, hd);
                        }
                    }
                    RowMatMul.Multiply(attention, n, L.O, Bias(L.OBias), residual, accumulate: true, threads);
                    for (int r = 0; r < n; r++) RmsNormRow(residual + r * hidden, normed + r * hidden, hidden, eps);
                    RowMatMul.Multiply(normed, n, L.GateUp, null, gateUp, accumulate: false, threads);
                    for (int r = 0; r < n; r++)
                        SwiGluRow(gateUp + r * 2 * inter, gateUp + r * 2 * inter + inter, activation + r * inter, inter);
                    RowMatMul.Multiply(activation, n, L.Down, null, residual, accumulate: true, threads);
                }

                // Only each session's last position needs logits (every position when scoring a prompt); they go
                // straight into the caller's rows.
                if (everyPosition)
                    for (int r = 0; r < n; r++) RmsNormRow(residual + r * hidden, lastNormed + r * hidden, hidden, eps);
                else
                    for (int i = 0, r = 0; i < b; i++)
                    {
                        r += counts[i];
                        RmsNormRow(residual + (r - 1) * hidden, lastNormed + i * hidden, hidden, eps);
                    }
                RowMatMul.Multiply(lastNormed, scored, lmHead, null, output, accumulate: false, threads);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
        GC.KeepAlive(cosTable); GC.KeepAlive(sinTable);   // replaced tables are freed by the GC: not before this step is done
    }

    private static float* Bias(Tensor? bias) => bias is null ? null : Data(bias);

    public void Dispose()
    {
        embedding.Dispose(); lmHead.Dispose();
        foreach (var l in layers)
        {
            l.Qkv.Dispose(); l.QkvBias?.Dispose(); l.O.Dispose(); l.OBias?.Dispose(); l.GateUp.Dispose(); l.Down.Dispose();
        }
    }
}
