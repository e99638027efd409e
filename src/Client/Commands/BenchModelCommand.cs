using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using LLama;
using LLama.Common;
using LLama.Native;
using ProxyOrleans.Inference.Checkpoints;
using ProxyOrleans.Inference.Models;
using TorchSharp;

namespace ProxyOrleans.Client.Commands;

/// <summary>
/// <c>proxyorleans bench model [--model DIR]</c>: single-stream prefill and decode tokens/s of our engine, batch-invariant
/// (the default) and fast (BatchInvariant off) side by side, and batched decode of 8 sequences, next to llama.cpp
/// (LLamaSharp, its own batched API for the 8) on the same F32 weights (exported to GGUF), interleaved repetitions,
/// medians, ratios from one run. llama.cpp runs at its fastest setting on this CPU: F32 KV cache, flash attention off.
/// Without --model a random-weight ~40M-parameter Llama is created (hidden 512, 8 layers, GQA 8/4, vocab 32000, tied).
/// </summary>
public static class BenchModelCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model", "-m") { Description = "Model directory (default: create a random-weight ~40M-parameter Llama)" };
        var threads = new Option<int>("--threads") { Description = "CPU threads for both engines", DefaultValueFactory = _ => 1 };
        var prompt = new Option<int>("--prompt") { Description = "Prefill length in tokens", DefaultValueFactory = _ => 128 };
        var decode = new Option<int>("--decode") { Description = "Decode steps per repetition", DefaultValueFactory = _ => 128 };
        var reps = new Option<int>("--reps") { Description = "Interleaved repetitions (median reported)", DefaultValueFactory = _ => 5 };
        var command = new Command("model", "Prefill and decode tokens/s of one model, ours vs llama.cpp on the same F32 weights")
        {
            model, threads, prompt, decode, reps,
        };
        command.SetAction(p => Run(p.GetValue(model), p.GetValue(threads), p.GetValue(prompt), p.GetValue(decode), p.GetValue(reps), Console.Out));
        return command;
    }

    public static int Run(string? modelDir, int threads, int promptLength, int decodeSteps, int reps, TextWriter output)
    {
        string work = Path.Combine(Path.GetTempPath(), "proxyorleans-bench-" + Environment.ProcessId);
        Directory.CreateDirectory(work);
        try
        {
            if (modelDir is null)
            {
                modelDir = Path.Combine(work, "random-llama-40m");
                CreateRandomModel(modelDir);
            }
            var config = LlamaConfig.Load(modelDir);
            int total = promptLength + decodeSteps;
            if (total > config.MaxPositionEmbeddings) throw new ArgumentException($"--prompt + --decode ({total}) exceeds max_position_embeddings {config.MaxPositionEmbeddings}.");
            string gguf = Path.Combine(work, "model-f32.gguf");
            GgufExport.Export(modelDir, gguf);
            long parameters = LlamaInferenceModel.ExpectedShapes(config).Values.Sum(s => s.Aggregate(1L, (a, b) => a * b));

            var rng = new Random(42);
            var tokens = Enumerable.Range(0, total).Select(_ => rng.Next(3, config.VocabSize)).ToArray();
            // The default, batch-invariant engine and the faster torch path, side by side.
            using var ours = LlamaInferenceModel.Load(modelDir, new InferenceOptions { Threads = threads, BatchInvariant = true });
            using var fast = LlamaInferenceModel.Load(modelDir, new InferenceOptions { Threads = threads, BatchInvariant = false });
            NativeLogConfig.llama_log_set((_, _) => { });
            var lp = new ModelParams(gguf)
            {
                ContextSize = (uint)Math.Max(total, 256), BatchSize = (uint)Math.Max(promptLength, 1), UBatchSize = (uint)Math.Max(promptLength, 1),
                Threads = threads, BatchThreads = threads, GpuLayerCount = 0,
                FlashAttention = false, TypeK = GGMLType.GGML_TYPE_F32, TypeV = GGMLType.GGML_TYPE_F32,
            };
            using var weights = LLamaWeights.LoadFromFile(lp);

            output.WriteLine($"model: {modelDir} ({parameters / 1e6:F1}M parameters, hidden {config.HiddenSize}, {config.NumHiddenLayers} layers, " +
                             $"heads {config.NumAttentionHeads}/{config.NumKeyValueHeads}, vocab {config.VocabSize}, tied {config.TieWordEmbeddings})");
            output.WriteLine($"threads {threads}, prompt {promptLength} tokens, decode {decodeSteps} steps, {reps} interleaved repetitions (+1 warm-up); " +
                             $"ours = batch-invariant (the default), fast = BatchInvariant off (torch path); " +
                             $"llama.cpp: F32 KV cache, flash attention off. Shared machine: figures are disturbed by other processes.");
            var oursPrefill = new List<Rate>(); var oursDecode = new List<Rate>();
            var fastPrefill = new List<Rate>(); var fastDecode = new List<Rate>();
            var cppPrefill = new List<Rate>(); var cppDecode = new List<Rate>();
            float[] oursLast = [], cppLast = [];
            for (int r = 0; r <= reps; r++)
            {
                var (op, od, ol) = RunOurs(ours, tokens, promptLength);
                var (fp, fd, _) = RunOurs(fast, tokens, promptLength);
                var (cp, cd, cl) = RunLlamaCpp(weights, lp, tokens, promptLength);
                if (r == 0) { oursLast = ol; cppLast = cl; continue; } // warm-up
                oursPrefill.Add(op); oursDecode.Add(od); fastPrefill.Add(fp); fastDecode.Add(fd); cppPrefill.Add(cp); cppDecode.Add(cd);
                output.WriteLine($"rep {r}: ours prefill {op.Wall:F0} tok/s decode {od.Wall:F1} tok/s (per CPU-second {od.Cpu:F1}) | " +
                                 $"fast prefill {fp.Wall:F0} decode {fd.Wall:F1} (per CPU-second {fd.Cpu:F1}) | " +
                                 $"llama.cpp prefill {cp.Wall:F0} tok/s decode {cd.Wall:F1} tok/s (per CPU-second {cd.Cpu:F1})");
            }
            float maxDiff = oursLast.Zip(cppLast, (a, b) => Math.Abs(a - b)).Max();

            // Batched decode of 8 sequences: ours (StepBatch) vs llama.cpp's own batched decode, interleaved.
            const int sessions = 8;
            int batchSteps = Math.Min(decodeSteps, 32), batchReps = Math.Max(1, reps / 2);
            var oursBatch = new List<double>(); var fastBatch = new List<double>(); var cppBatch = new List<double>();
            for (int r = 0; r <= batchReps; r++)
            {
                double o = RunBatch(ours, tokens, promptLength, sessions, batchSteps);
                double f = RunBatch(fast, tokens, promptLength, sessions, batchSteps);
                double c = RunLlamaCppBatch(weights, gguf, threads, tokens, promptLength, sessions, batchSteps);
                if (r == 0) continue; // warm-up
                oursBatch.Add(o); fastBatch.Add(f); cppBatch.Add(c);
                output.WriteLine($"batch rep {r}: {sessions} sequences x {batchSteps} steps: ours {o:F1} tok/s, fast {f:F1}, llama.cpp {c:F1}");
            }
            double M(List<Rate> xs, bool cpu) => Median(xs.Select(x => cpu ? x.Cpu : x.Wall).ToList());
            double oD = M(oursDecode, false), fD = M(fastDecode, false), cD = M(cppDecode, false);
            double oP = M(oursPrefill, false), fP = M(fastPrefill, false), cP = M(cppPrefill, false);
            double oDc = M(oursDecode, true), fDc = M(fastDecode, true), cDc = M(cppDecode, true);
            double oB = Median(oursBatch), fB = Median(fastBatch), cB = Median(cppBatch);
            output.WriteLine($"batch-invariant vs fast: decode {oD / fD:F2}x, prefill {oP / fP:F2}x, batch of 8 {oB / fB:F2}x the fast path's tokens/s");
            output.WriteLine($"last-step logits, ours vs llama.cpp: max |Δ| = {maxDiff:E2}");
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"params_m={parameters / 1e6:F1} threads={threads} prompt={promptLength} decode={decodeSteps} reps={reps} " +
                $"ours_decode_tok_s={oD:F1} llamacpp_decode_tok_s={cD:F1} decode_ratio={oD / cD:F2} " +
                $"ours_prefill_tok_s={oP:F0} llamacpp_prefill_tok_s={cP:F0} prefill_ratio={oP / cP:F2} " +
                $"ours_decode_tok_per_cpu_s={oDc:F1} llamacpp_decode_tok_per_cpu_s={cDc:F1} decode_cpu_ratio={oDc / cDc:F2} " +
                $"fast_decode_tok_s={fD:F1} fast_decode_ratio={fD / cD:F2} fast_decode_tok_per_cpu_s={fDc:F1} fast_prefill_tok_s={fP:F0} fast_prefill_ratio={fP / cP:F2} " +
                $"invariant_decode_speed={oD / fD:F2} invariant_prefill_speed={oP / fP:F2} " +
                $"ours_batch8_tok_s={oB:F1} fast_batch8_tok_s={fB:F1} llamacpp_batch8_tok_s={cB:F1} " +
                $"batch8_ratio_vs_llamacpp={oB / cB:F2} fast_batch8_ratio_vs_llamacpp={fB / cB:F2} " +
                $"max_abs_logit_diff={maxDiff:E2} load_avg={File.ReadAllText("/proc/loadavg").Split(' ')[0]}"));
            return 0;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or NotSupportedException)
        {
            Console.Error.WriteLine(e.Message);
            return 1;
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>The benchmark's random model (39.6M parameters); `bench cluster --larger` puts its body on the demo vocabulary.</summary>
    internal static readonly LlamaConfig RandomModelConfig = new()
    {
        HiddenSize = 512, IntermediateSize = 1376, NumHiddenLayers = 8, NumAttentionHeads = 8, NumKeyValueHeads = 4, HeadDim = 64,
        VocabSize = 32000, MaxPositionEmbeddings = 1024, RmsNormEps = 1e-5, TieWordEmbeddings = true, BosTokenId = 1, EosTokenIds = [2],
    };

    private static void CreateRandomModel(string dir)
    {
        torch.manual_seed(1);
        using var m = new LlamaForCausalLM(RandomModelConfig);
        m.SavePretrained(dir);
    }

    private static (Rate prefill, Rate decode, float[] last) RunOurs(LlamaInferenceModel model, int[] tokens, int promptLength)
    {
        using var s = model.CreateSession(tokens.Length);
        var logits = new float[model.VocabSize];
        var clock = new Clock();
        s.Append(tokens.AsSpan(0, promptLength), logits);
        var prefill = clock.Lap();
        for (int t = promptLength; t < tokens.Length; t++) s.Append(tokens.AsSpan(t, 1), logits);
        var decode = clock.Lap();
        return (new(promptLength / prefill.wall, promptLength / prefill.cpu),
                new((tokens.Length - promptLength) / decode.wall, (tokens.Length - promptLength) / decode.cpu), logits);
    }

    private static (Rate prefill, Rate decode, float[] last) RunLlamaCpp(LLamaWeights weights, ModelParams p, int[] tokens, int promptLength)
    {
        using var ctx = weights.CreateContext(p);
        var batch = new LLamaBatch();
        for (int i = 0; i < promptLength; i++) batch.Add(tokens[i], i, LLamaSeqId.Zero, i == promptLength - 1);
        var clock = new Clock();
        Check(ctx.Decode(batch));
        var prefill = clock.Lap();
        float[] last = [];
        for (int t = promptLength; t < tokens.Length; t++)
        {
            batch.Clear();
            batch.Add(tokens[t], t, LLamaSeqId.Zero, true);
            Check(ctx.Decode(batch));
            if (t == tokens.Length - 1) last = ctx.NativeHandle.GetLogitsIth(0).ToArray();
        }
        var decode = clock.Lap();
        return (new(promptLength / prefill.wall, promptLength / prefill.cpu),
                new((tokens.Length - promptLength) / decode.wall, (tokens.Length - promptLength) / decode.cpu), last);
    }

    /// <summary>Aggregate decode tokens/s of <paramref name="sessions"/> sessions stepped together with StepBatch.</summary>
    private static double RunBatch(LlamaInferenceModel model, int[] tokens, int promptLength, int sessions, int steps)
    {
        var ss = Enumerable.Range(0, sessions).Select(_ => model.CreateSession(promptLength + steps)).ToArray();
        try
        {
            var one = new float[model.VocabSize];
            foreach (var s in ss) s.Append(tokens.AsSpan(0, promptLength), one);
            var logits = new float[sessions * model.VocabSize];
            var step = new int[sessions];
            var sw = Stopwatch.StartNew();
            for (int t = 0; t < steps; t++)
            {
                Array.Fill(step, tokens[promptLength + t]);
                model.StepBatch(ss, step, logits);
            }
            return sessions * steps / sw.Elapsed.TotalSeconds;
        }
        finally
        {
            foreach (var s in ss) s.Dispose();
        }
    }

    /// <summary>
    /// Aggregate decode tokens/s of llama.cpp's own batched decode: <paramref name="sessions"/> sequences (seq ids) in one
    /// context, each prefilled with the prompt, then one batch per step holding one token of every sequence.
    /// </summary>
    private static double RunLlamaCppBatch(LLamaWeights weights, string gguf, int threads, int[] tokens, int promptLength, int sessions, int steps)
    {
        int perSequence = promptLength + steps;
        var p = new ModelParams(gguf)
        {
            ContextSize = (uint)(sessions * perSequence), SeqMax = (uint)sessions,
            BatchSize = (uint)Math.Max(promptLength, sessions), UBatchSize = (uint)Math.Max(promptLength, sessions),
            Threads = threads, BatchThreads = threads, GpuLayerCount = 0,
            FlashAttention = false, TypeK = GGMLType.GGML_TYPE_F32, TypeV = GGMLType.GGML_TYPE_F32,
        };
        using var ctx = weights.CreateContext(p);
        var batch = new LLamaBatch();
        for (int s = 0; s < sessions; s++)
        {
            batch.Clear();
            for (int i = 0; i < promptLength; i++) batch.Add(tokens[i], i, (LLamaSeqId)s, i == promptLength - 1);
            Check(ctx.Decode(batch));
        }
        var sw = Stopwatch.StartNew();
        for (int t = 0; t < steps; t++)
        {
            batch.Clear();
            for (int s = 0; s < sessions; s++) batch.Add(tokens[promptLength + t], promptLength + t, (LLamaSeqId)s, true);
            Check(ctx.Decode(batch));
        }
        return sessions * steps / sw.Elapsed.TotalSeconds;
    }

    /// <summary>Wall time and this process's CPU time: at 1 thread, CPU time is less disturbed by other processes on a shared machine.</summary>
    private sealed class Clock
    {
        private readonly Stopwatch wall = Stopwatch.StartNew();
        private TimeSpan cpu = Process.GetCurrentProcess().TotalProcessorTime;
        public (double wall, double cpu) Lap()
        {
            var c = Process.GetCurrentProcess().TotalProcessorTime;
            var r = (wall.Elapsed.TotalSeconds, (c - cpu).TotalSeconds);
            cpu = c; wall.Restart();
            return r;
        }
    }

    private static void Check(DecodeResult r)
    {
        if (r != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode failed: {r}");
    }

    /// <summary>Tokens per second of wall time and of process CPU time.</summary>
    private readonly record struct Rate(double Wall, double Cpu);

    private static double Median(List<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
