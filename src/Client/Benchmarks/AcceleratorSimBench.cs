using System.Diagnostics;
using System.Globalization;
using ProxyOrleans.Abstractions;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Runtime;
using ProxyOrleans.Inference.Tokenization;
using ScottPlot;
using TorchSharp;

namespace ProxyOrleans.Client.Benchmarks;

/// <summary>What `bench cluster --accelerator-sim` runs.</summary>
/// <param name="Quick">CI-sized: the presets' deployed layout, one model step (20 ms), 1 and 64 streams, short windows.</param>
/// <param name="TokenizerModel">The Llama-2 SentencePiece tokenizer.model (32000 tokens); null: ../shared/data beside the repository.</param>
/// <param name="PlotPrefix">Write PREFIX-latency.png and PREFIX-throughput.png; null: no plots.</param>
/// <param name="BatchWindowMs">The silos' ProxyOrleans:BatchWindowMs (how long a model waits for its previous batch's sessions).</param>
public sealed record AcceleratorSimOptions(bool Quick = false, string? TokenizerModel = null, string? PlotPrefix = null, TextWriter? SiloLog = null,
    double BatchWindowMs = 2);

/// <summary>
/// `bench cluster --accelerator-sim`: the distributed system over real silo processes on loopback TCP, with every model
/// a real 32k-vocabulary TorchSharp Llama (random weights) whose forwards are padded to a simulated accelerator's
/// latency (<see cref="AcceleratorLatencyModel"/>, loaded by the silos with --latency-model). Orleans, sockets,
/// serialization, placement, batching, combining and sampling are the real code; only the GPU's time is simulated.
/// </summary>
public static class AcceleratorSimBench
{
    public const string Banner = "SIMULATION (no GPU): model forwards padded to simulated accelerator latencies; logits from real 32k-vocabulary random-weight models";

    /// <summary>The real model behind every simulated one: small enough that its CPU time stays under the simulated latency, with Llama-2's vocabulary.</summary>
    internal static readonly LlamaConfig SimModelConfig = new()
    {
        HiddenSize = 16, IntermediateSize = 48, NumHiddenLayers = 2, NumAttentionHeads = 2, NumKeyValueHeads = 1, HeadDim = 8,
        VocabSize = 32000, MaxPositionEmbeddings = 1024, RmsNormEps = 1e-5, RopeTheta = 10000, TieWordEmbeddings = false,
        ModelType = "llama", BosTokenId = 1, EosTokenIds = [2],
    };

    private const string BaseName = "sim-base", ExpertName = "sim-expert", AntiName = "sim-anti";
    private const string BasePreset = "base-70b-h200", ExpertPreset = "expert-7b-h200";

    private static readonly string[] Prompts =
    [
        "Question: What is the capital of Elbonia?\nAnswer:",
        "Write a short poem about the sea.",
        "In 1492, Columbus",
        "Explain, step by step, how a bicycle gear system lets a rider climb a steep hill without standing up on the pedals.",
        "Translate to French: the weather is nice today and we are going to the market.",
    ];

    private sealed record Layout(string Key, string Title, bool Anywhere, bool Pairs, bool BaseOnly);

    private sealed record Row(Layout Layout, double StepMs, double ModelMs, double SumModelsMs, double BytesPerStep, bool? SameTokens, double CombineSampleMs);

    public static async Task<IReadOnlyDictionary<string, double>> RunAsync(AcceleratorSimOptions o, TextWriter output, CancellationToken ct)
    {
        TorchRuntime.EnsureLoaded();
        var tokenizer = FindTokenizer(o.TokenizerModel);
        var kv = new Dictionary<string, double>(StringComparer.Ordinal);
        double batchWindowMs = o.BatchWindowMs;
        int tokens = o.Quick ? 16 : 32, runs = o.Quick ? 1 : 5;
        int minTokens = o.Quick ? 16 : 48, maxTokens = o.Quick ? 32 : 128; // the throughput runs' generation lengths
        double[] steps = o.Quick ? [20] : [5, 10, 20, 50];
        int[] concurrency = o.Quick ? [1, 64] : [1, 4, 16, 64];
        var prompt = Prompts[0];
        var bp = AcceleratorLatencyProfile.Parse(BasePreset);
        var ep = AcceleratorLatencyProfile.Parse(ExpertPreset);
        output.WriteLine($"bench cluster --accelerator-sim: {Banner}.");
        output.WriteLine($"  base   {bp}");
        output.WriteLine($"  expert {ep} (expert and anti-expert)");
        output.WriteLine($"  {tokens} tokens/generation, {runs} runs/layout, loopback TCP, {Environment.ProcessorCount} cores; real model: hidden {SimModelConfig.HiddenSize}, " +
                         $"{SimModelConfig.NumHiddenLayers} layers, vocabulary {SimModelConfig.VocabSize} ({SimModelConfig.VocabSize * 4 / 1024} KiB of fp32 logits per vector); batch window {o.BatchWindowMs} ms");

        string dir = Path.Combine(Path.GetTempPath(), "proxyorleans-accelerator-sim-" + Environment.ProcessId);
        try
        {
            var b = WriteModel(dir, BaseName, 1, tokenizer);
            var e = WriteModel(dir, ExpertName, 2, tokenizer);
            var a = WriteModel(dir, AntiName, 3, tokenizer);
            int promptTokens = TokenizerLoader.Load(b.Path).Encode(prompt).Length;
            long context = promptTokens + tokens / 2; // mean KV length over a generation, for the models' sum
            var spec = new CombinationSpec(BaseName, [new ExpertSpec(ExpertName, AntiName)], 1f);
            var baseOnly = spec with { Experts = [] };
            // One torch thread per silo process (several share the cores); batches up to 64 sessions (the 64-stream run).
            var common = new Dictionary<string, string> { ["ProxyOrleans:Threads"] = "1", ["ProxyOrleans:MaxBatch"] = "64", ["ProxyOrleans:BatchWindowMs"] = batchWindowMs.ToString(CultureInfo.InvariantCulture) };
            LoopbackCluster.SiloSpec Silo(string name, string latency, params (string, string)[] models) =>
                new(name, models) { Config = new Dictionary<string, string> { ["ProxyOrleans:LatencyModel"] = latency } };

            // 1. The presets, per layout.
            var rows = new List<Row>();
            int[]? reference = null;
            double SumOfModels(Layout l) => bp.DecodeMs(1, context) + (l.BaseOnly ? 0 : 2 * ep.DecodeMs(1, context));
            async Task MeasureInto(LoopbackCluster c, params Layout[] layouts)
            {
                var measured = await MeasureAsync(c, layouts.Select(l => (l.BaseOnly ? baseOnly : spec, l)).ToArray(), prompt, tokens, runs, ct);
                for (int i = 0; i < layouts.Length; i++)
                {
                    var (l, m) = (layouts[i], measured[i]);
                    bool? same = l.BaseOnly ? null : reference is null || m.Tokens.SequenceEqual(reference);
                    if (!l.BaseOnly) reference ??= m.Tokens;
                    rows.Add(new Row(l, m.StepMs, m.ModelMs, SumOfModels(l), m.BytesPerStep, same, m.CombineSampleMs));
                    output.WriteLine($"  {l.Title}: step {m.StepMs:F2} ms (slowest model {m.ModelMs:F2} ms)");
                }
            }
            var sw = Stopwatch.StartNew();
            if (!o.Quick)
            {
                await using var c = await LoopbackCluster.StartAsync(
                    [Silo("base", BasePreset, b), Silo("expert", ExpertPreset, e), Silo("anti", ExpertPreset, a), new("coordinator")], o.SiloLog, common, ct);
                output.WriteLine($"cluster 1 (4 processes: base | expert | anti-expert | coordinator) up in {sw.Elapsed.TotalSeconds:F1} s");
                await MeasureInto(c, new("separate", "all separate (coordinator on its own silo)", true, false, false),
                    new("beside_base", "coordinator beside the base", false, false, false),
                    new("base_only_separate", "base alone, coordinator on its own silo", true, false, true));
            }
            sw.Restart();
            var failures = new List<(string What, int Count)>();
            var throughput = new List<(int Streams, Throughput Base, Throughput Proxy, Throughput Fp16)>();
            double loadBefore = double.NaN;
            await using (var c = await LoopbackCluster.StartAsync([Silo("base", BasePreset, b), Silo("pair", ExpertPreset, e, a)], o.SiloLog, common, ct))
            {
                output.WriteLine($"cluster 2 (2 processes: base | expert+anti-expert) up in {sw.Elapsed.TotalSeconds:F1} s");
                await MeasureInto(c, new("pair", "beside base + expert/anti-expert co-hosted (deployed layout)", false, true, false),
                    new("base_alone", "base alone, coordinator beside it (no proxy-tuning)", false, false, true));

                // 3. Aggregate throughput with sessions joining and leaving at different positions.
                double warmup = o.Quick ? 1 : 1.5, window = o.Quick ? 2 : 4;
                loadBefore = LoadAverage();
                foreach (var n in concurrency)
                {
                    var baseRun = await ThroughputAsync(c, baseOnly, false, n, warmup, window, minTokens, maxTokens, failures, ct);
                    var proxyRun = await ThroughputAsync(c, spec, true, n, warmup, window, minTokens, maxTokens, failures, ct);
                    var halfRun = await ThroughputAsync(c, spec, true, n, warmup, window, minTokens, maxTokens, failures, ct, LogitsPrecision.Float16);
                    throughput.Add((n, baseRun, proxyRun, halfRun));
                    output.WriteLine($"  {n} streams: base alone {baseRun.TokensPerSecond:F0} tok/s, proxy-tuned {proxyRun.TokensPerSecond:F0} tok/s, with fp16 transfer {halfRun.TokensPerSecond:F0} tok/s");
                }
            }

            // 2. Coordination overhead against the model step: the base at S ms, the experts at the 7B/70B ratio of the presets.
            var sweep = new List<(double S, double BaseStep, double ProxyStep, double Model, double Sum, double BaseBytes, double ProxyBytes)>();
            foreach (var s in steps)
            {
                var bs = bp with { Name = $"base at {s} ms", FixedMs = s };
                var es = ep with { Name = $"expert at {s * ep.FixedMs / bp.FixedMs:F2} ms", FixedMs = s * ep.FixedMs / bp.FixedMs };
                sw.Restart();
                await using var c = await LoopbackCluster.StartAsync([Silo("base", SpecOf(bs), b), Silo("pair", SpecOf(es), e, a)], o.SiloLog, common, ct);
                output.WriteLine($"model step {s} ms: cluster (base | expert+anti-expert) up in {sw.Elapsed.TotalSeconds:F1} s");
                var both = await MeasureAsync(c, [(spec, new("pair", "", false, true, false)), (baseOnly, new("base_alone", "", false, false, true))], prompt, tokens, runs, ct);
                var (proxy, alone) = (both[0], both[1]);
                if (reference is not null && !proxy.Tokens.SequenceEqual(reference))
                    output.WriteLine($"  WARNING: tokens at model step {s} ms differ from the presets' run");
                sweep.Add((s, alone.StepMs, proxy.StepMs, proxy.ModelMs, bs.DecodeMs(1, context) + 2 * es.DecodeMs(1, context), alone.BytesPerStep, proxy.BytesPerStep));
            }

            // Report.
            output.WriteLine();
            output.WriteLine($"SIMULATED accelerators ({BasePreset} base, {ExpertPreset} experts): one stream, per layout");
            output.WriteLine($"{"layout",-62} {"step ms",8} {"max(model)",10} {"sum(models)",11} {"coord%",7} {"seq/par",8} {"KiB/step",9} {"comb+smp",8} exact");
            foreach (var r in rows)
                output.WriteLine($"{r.Layout.Title,-62} {r.StepMs,8:F2} {r.ModelMs,10:F2} {r.SumModelsMs,11:F2} {100 * (r.StepMs - r.ModelMs) / r.StepMs,6:F1}% " +
                                 $"{r.SumModelsMs / r.StepMs,8:F2} {r.BytesPerStep / 1024,9:F1} {r.CombineSampleMs,8:F3} {(r.SameTokens is null ? "-" : r.SameTokens.Value ? "yes" : "NO")}");
            output.WriteLine("max(model) = the slowest model's simulated compute per step (measured at the model grain); sum(models) = the three models");
            output.WriteLine("one after another, as the reference's sequential loop runs them (from the latency models); seq/par = sum(models) / step;");
            output.WriteLine("comb+smp = the coordinator's combining and sampling per step (ms of its CPU, per stream).");
            output.WriteLine();
            output.WriteLine("SIMULATED model step sweep (deployed layout vs base alone, coordinator beside the base; experts at the 7B/70B latency ratio)");
            output.WriteLine($"{"model step",10} {"base alone",11} {"proxy-tuned",12} {"max(model)",11} {"sum(models)",12} {"coord%",7} {"proxy/base",11} {"seq/par",8} {"KiB/step",9}");
            foreach (var x in sweep)
                output.WriteLine($"{x.S,8:F0} ms {x.BaseStep,11:F2} {x.ProxyStep,12:F2} {x.Model,11:F2} {x.Sum,12:F2} {100 * (x.ProxyStep - x.Model) / x.ProxyStep,6:F1}% " +
                                 $"{x.ProxyStep / x.BaseStep,11:F3} {x.Sum / x.ProxyStep,8:F2} {x.ProxyBytes / 1024,9:F1}");
            output.WriteLine();
            output.WriteLine($"SIMULATED aggregate throughput ({BasePreset} / {ExpertPreset}; sessions of {minTokens}-{maxTokens} tokens joining and leaving, 5 prompts)");
            output.WriteLine($"{"streams",7} {"base tok/s",11} {"proxy tok/s",12} {"proxy/base",11} {"fp16 tok/s",11} {"rows/fwd base|proxy",20} {"prefills/fwd",13} {"ms/fwd base|proxy",18} {"profile ms",11}");
            foreach (var (n, tb, tp, th) in throughput)
                output.WriteLine($"{n,7} {tb.TokensPerSecond,11:F0} {tp.TokensPerSecond,12:F0} {tp.TokensPerSecond / tb.TokensPerSecond,11:F3} {th.TokensPerSecond,11:F0} " +
                                 $"{tb.RowsPerForward,9:F1} | {tp.RowsPerForward,-8:F1} {tb.PrefillsPerForward,5:F2} | {tp.PrefillsPerForward,-5:F2} {tb.MsPerForward,8:F1} | {tp.MsPerForward,-7:F1} " +
                                 $"{bp.DecodeMs((int)Math.Round(tp.RowsPerForward), (long)Math.Round(tp.RowsPerForward) * (promptTokens + (minTokens + maxTokens) / 4)),11:F1}");
            output.WriteLine("fp16 = proxy-tuned with fp16 transfer. rows/fwd = mean sessions per base decode forward (continuous batching across sessions at");
            output.WriteLine("different positions); prefills/fwd = base prefills (one at a time, between decode forwards) per decode forward; ms/fwd = the base's");
            output.WriteLine("mean forward time (decode and prefill) from its silo's counters; profile ms = the latency model's decode time at the proxy's rows/fwd:");
            output.WriteLine("where ms/fwd is far above it, this machine's CPUs, not the simulated accelerator, set the pace.");
            output.WriteLine();
            output.WriteLine($"Where this machine's CPU went in the throughput runs ({Environment.ProcessorCount} cores; load average {loadBefore:F1} before, {LoadAverage():F1} after, other jobs included)");
            output.WriteLine($"{"streams",7} {"run",6} {"real fwd ms base|pair",22} {"CPU ms/token base silo|pair silo|client",40} {"CPU ms/token all",17} {"our CPU share",14}");
            foreach (var (n, tb, tp, _) in throughput)
                foreach (var (name, t) in new[] { ("base", tb), ("proxy", tp) })
                    output.WriteLine($"{n,7} {name,6} {t.HostMsPerForward,10:F2} | {t.PairHostMsPerForward,-9:F2} {t.CpuMsPerToken.Base,14:F3} | {t.CpuMsPerToken.Pair,-9:F3} | {t.CpuMsPerToken.Client,-12:F3} " +
                                     $"{t.CpuMsPerToken.Base + t.CpuMsPerToken.Pair + t.CpuMsPerToken.Client,17:F3} {100 * t.CpuBusy,13:F0}%");
            output.WriteLine("real fwd ms = CPU wall time of the real small models' forwards (the part of each simulated forward that is not waiting),");
            output.WriteLine("per base forward and per expert forward (expert + anti-expert together); CPU ms/token = each process's CPU time over the");
            output.WriteLine("window per token counted; our CPU share = all three processes' CPU time / (window x cores). A GPU node runs the models' compute");
            output.WriteLine("on the accelerators, not on the host CPU: the real forwards' time is this simulation's cost, not the design's.");

            foreach (var r in rows)
            {
                kv[$"sim_{r.Layout.Key}_step_ms"] = r.StepMs;
                kv[$"sim_{r.Layout.Key}_model_ms"] = r.ModelMs;
                kv[$"sim_{r.Layout.Key}_sum_models_ms"] = r.SumModelsMs;
                kv[$"sim_{r.Layout.Key}_bytes_per_step"] = Math.Round(r.BytesPerStep);
                kv[$"sim_{r.Layout.Key}_combine_sample_ms"] = r.CombineSampleMs;
                if (r.SameTokens is bool same) kv[$"sim_{r.Layout.Key}_exact"] = same ? 1 : 0;
            }
            foreach (var x in sweep)
            {
                var k = x.S.ToString(CultureInfo.InvariantCulture) + "ms";
                kv[$"sim_overhead_pct_{k}"] = 100 * (x.ProxyStep - x.Model) / x.ProxyStep;
                kv[$"sim_proxy_over_base_{k}"] = x.ProxyStep / x.BaseStep;
                kv[$"sim_sequential_over_parallel_{k}"] = x.Sum / x.ProxyStep;
            }
            foreach (var (n, tb, tp, th) in throughput)
            {
                kv[$"sim_tok_s_{n}_proxy"] = tp.TokensPerSecond;
                kv[$"sim_tok_s_{n}_base"] = tb.TokensPerSecond;
                kv[$"sim_tok_s_{n}_proxy_fp16"] = th.TokensPerSecond;
                kv[$"sim_rows_per_forward_{n}_proxy"] = tp.RowsPerForward;
                kv[$"sim_rows_per_forward_{n}_base"] = tb.RowsPerForward;
                kv[$"sim_ms_per_forward_{n}_proxy"] = tp.MsPerForward;
                kv[$"sim_ms_per_forward_{n}_base"] = tb.MsPerForward;
                kv[$"sim_real_forward_ms_{n}_base"] = tb.HostMsPerForward;
                kv[$"sim_real_forward_ms_{n}_proxy_base"] = tp.HostMsPerForward;
                kv[$"sim_real_forward_ms_{n}_proxy_pair"] = tp.PairHostMsPerForward;
                kv[$"sim_cpu_ms_per_token_{n}_base"] = tb.CpuMsPerToken.Base + tb.CpuMsPerToken.Pair + tb.CpuMsPerToken.Client;
                kv[$"sim_cpu_ms_per_token_{n}_proxy"] = tp.CpuMsPerToken.Base + tp.CpuMsPerToken.Pair + tp.CpuMsPerToken.Client;
                kv[$"sim_cpu_share_{n}_proxy"] = tp.CpuBusy;
            }
            kv["sim_failed_generations"] = failures.Sum(f => f.Count);
            foreach (var f in failures) output.WriteLine("FAILED generations in the throughput run at " + f.What);
            if (o.PlotPrefix is { } prefix)
            {
                WritePlots(prefix, sweep.Select(x => (x.S, x.BaseStep, x.ProxyStep, x.Model, x.Sum)).ToList(),
                    throughput.Select(t => (t.Streams, t.Base.TokensPerSecond, t.Proxy.TokensPerSecond)).ToList(),
                    n => n * 1000 / bp.DecodeMs(n, n * (promptTokens + (minTokens + maxTokens) / 4L)));
                output.WriteLine($"plots written to {prefix}-latency.png and {prefix}-throughput.png");
            }
            return kv;
        }
        finally { try { Directory.Delete(dir, true); } catch (IOException) { } }
    }

    public static string KeyValueLine(IReadOnlyDictionary<string, double> kv) =>
        string.Join(" ", kv.Select(p => $"{p.Key}={p.Value.ToString("0.###", CultureInfo.InvariantCulture)}"));

    private static string SpecOf(AcceleratorLatencyProfile p) => string.Create(CultureInfo.InvariantCulture,
        $"fixed={p.FixedMs:R},row={p.PerRowMs:R},context_us={p.PerContextTokenUs:R},prefill_token={p.PrefillPerTokenMs:R}");

    private static string FindTokenizer(string? path)
    {
        path ??= Path.Combine(Path.GetDirectoryName(RepositoryLayout.Root())!, "shared", "data", "llama2-tokenizer", "tokenizer.model");
        if (!File.Exists(path))
            throw new FileNotFoundException(
                $"The accelerator simulation needs the Llama-2 SentencePiece tokenizer (32000 tokens, a tokenizer.model file): '{path}' does not exist. " +
                "Pass --sim-tokenizer <path to tokenizer.model>.");
        return Path.GetFullPath(path);
    }

    /// <summary>A seeded random-weight <see cref="SimModelConfig"/> model with the Llama-2 tokenizer, as an HF directory.</summary>
    private static (string Name, string Path) WriteModel(string dir, string name, int seed, string tokenizerModel)
    {
        var dest = Path.Combine(dir, name);
        torch.manual_seed(seed);
        using (var m = new LlamaForCausalLM(SimModelConfig)) m.SavePretrained(dest);
        File.Copy(tokenizerModel, Path.Combine(dest, "tokenizer.model"), overwrite: true);
        File.WriteAllText(Path.Combine(dest, "tokenizer_config.json"), "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"add_bos_token\": true}");
        return (name, dest);
    }

    private sealed record Measured(double StepMs, double ModelMs, double BytesPerStep, int[] Tokens, double CombineSampleMs);

    /// <summary>
    /// Runs of each (spec, layout) in turn, interleaved (a, b, a, b, ...) so that both see the same machine, after one
    /// warm-up each; reports per case the run with the median step time (other jobs on the machine slow single runs).
    /// </summary>
    private static async Task<Measured[]> MeasureAsync(LoopbackCluster c, (CombinationSpec Spec, Layout Layout)[] cases,
        string prompt, int tokens, int runs, CancellationToken ct)
    {
        foreach (var (spec, l) in cases) await GenerateAsync(c, spec, l.Anywhere, l.Pairs, prompt, tokens, null, ct); // JIT, activations, tokenizer fetch
        var all = cases.Select(_ => new List<(GenerationStats Stats, int[] Tokens)>()).ToArray();
        for (int i = 0; i < runs; i++)
            for (int k = 0; k < cases.Length; k++)
                all[k].Add(await GenerateAsync(c, cases[k].Spec, cases[k].Layout.Anywhere, cases[k].Layout.Pairs, prompt, tokens, null, ct));
        return all.Select(r =>
        {
            var (m, _) = r.OrderBy(x => x.Stats.StepMs).ElementAt(r.Count / 2);
            return new Measured(m.StepMs, m.ModelMs, m.BytesPerStep, r[0].Tokens, m.CombineMs + m.SampleMs);
        }).ToArray();
    }

    private static async Task<(GenerationStats Stats, int[] Tokens)> GenerateAsync(LoopbackCluster c, CombinationSpec spec, bool anywhere, bool pairs,
        string prompt, int tokens, Action? onToken, CancellationToken ct, LogitsPrecision precision = LogitsPrecision.Float32)
    {
        var request = new GenerationRequest
        {
            Combination = spec, Prompt = prompt, TenantId = "bench", CoHostedPairs = pairs, Precision = precision,
            Sampling = new SamplingSpec { Temperature = 0, MaxNewTokens = tokens, StopAtEos = false },
        };
        var id = "sim-" + Guid.NewGuid().ToString("N")[..10];
        var key = anywhere ? GenerationKeys.Anywhere(id) : GenerationKeys.Create(spec.Base, id);
        var ids = new List<int>();
        GenerationStats? stats = null;
        await foreach (var ev in c.Grains.GetGrain<IGenerationGrain>(key).Generate(request, ct))
        {
            if (ev.TokenId >= 0) { ids.Add(ev.TokenId); onToken?.Invoke(); }
            stats = ev.Stats ?? stats;
        }
        return (stats ?? new GenerationStats(), ids.ToArray());
    }

    /// <summary>
    /// <paramref name="streams"/> clients, each generating one request after another (random length and prompt), the
    /// first ones starting at random moments: sessions join and leave the models' batches at different positions.
    /// Counts the tokens that arrive within the window after a warm-up.
    /// </summary>
    /// <param name="RowsPerForward">Mean sessions per decode forward of the base.</param>
    /// <param name="PrefillsPerForward">Base prefills (run one at a time, between decode forwards) per decode forward.</param>
    /// <param name="MsPerForward">Mean wall time of the base's forwards (decode and prefill): the simulated latency unless the CPU overran it.</param>
    /// <param name="HostMsPerForward">The base's real forwards' CPU time per forward (decode and prefill; the rest of each was simulated wait).</param>
    /// <param name="PairHostMsPerForward">The same for the expert and the anti-expert together, per expert forward (0: not stepped).</param>
    /// <param name="CpuMsPerToken">CPU time per counted token of the base's silo (coordinators + base), the pair's silo and
    /// the client (this process), from the processes' own CPU clocks over the window.</param>
    /// <param name="CpuBusy">CPU time of all three processes over the window ÷ (window × cores): how much of the machine they got.</param>
    private sealed record Throughput(double TokensPerSecond, double RowsPerForward, double PrefillsPerForward, double MsPerForward,
        double HostMsPerForward, double PairHostMsPerForward, (double Base, double Pair, double Client) CpuMsPerToken, double CpuBusy);

    private static async Task<Throughput> ThroughputAsync(LoopbackCluster c, CombinationSpec spec, bool pairs, int streams,
        double warmupS, double windowS, int minTokens, int maxTokens, List<(string What, int Count)> failures, CancellationToken ct,
        LogitsPrecision precision = LogitsPrecision.Float32)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        long start = Stopwatch.GetTimestamp();
        long windowStart = start + (long)(warmupS * Stopwatch.Frequency), windowEnd = windowStart + (long)(windowS * Stopwatch.Frequency);
        int counted = 0, failed = 0;
        string? firstError = null;
        void OnToken()
        {
            long now = Stopwatch.GetTimestamp();
            if (now >= windowStart && now < windowEnd) Interlocked.Increment(ref counted);
        }
        async Task Client(int i)
        {
            var rng = new Random(1000 * streams + i);
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(rng.NextDouble() * warmupS * 0.8), stop.Token);
                while (!stop.IsCancellationRequested)
                {
                    try { await GenerateAsync(c, spec, false, pairs, Prompts[rng.Next(Prompts.Length)], rng.Next(minTokens, maxTokens + 1), OnToken, stop.Token, precision); }
                    catch (Exception e) when (!stop.IsCancellationRequested)
                    {
                        // Counted and reported, not hidden: one failed request must not end the other streams' measurement.
                        if (Interlocked.Increment(ref failed) == 1) firstError = e.GetType().Name + ": " + e.Message.Split('\n')[0];
                    }
                }
            }
            catch (Exception) when (stop.IsCancellationRequested) { }
        }
        var clients = Enumerable.Range(0, streams).Select(Client).ToList();
        await Task.Delay(TimeSpan.FromSeconds(warmupS), ct);
        var before = await CountersAsync(c, 0, BaseName);
        var (pairBefore, antiBefore) = (await CountersAsync(c, 1, ExpertName), await CountersAsync(c, 1, AntiName));
        var cpuBefore = (Base: c.CpuTime(0), Pair: c.CpuTime(1), Client: Process.GetCurrentProcess().TotalProcessorTime);
        await Task.Delay(TimeSpan.FromSeconds(windowS), ct);
        var cpuAfter = (Base: c.CpuTime(0), Pair: c.CpuTime(1), Client: Process.GetCurrentProcess().TotalProcessorTime);
        var after = await CountersAsync(c, 0, BaseName);
        var (pairAfter, antiAfter) = (await CountersAsync(c, 1, ExpertName), await CountersAsync(c, 1, AntiName));
        stop.Cancel();
        await Task.WhenAll(clients);
        await Task.Delay(300, ct); // let the cancelled sessions close before the next run
        double batches = after.Batches - before.Batches, prefills = after.Prefills - before.Prefills;
        if (failed > 0) failures.Add(($"{streams} streams ({(spec.Experts.Length == 0 ? "base alone" : "proxy-tuned")}): {failed} failed, first: {firstError}", failed));
        double pairForwards = pairAfter.Batches - pairBefore.Batches + pairAfter.Prefills - pairBefore.Prefills;
        double PerToken(TimeSpan from, TimeSpan to) => counted > 0 ? (to - from).TotalMilliseconds / counted : 0;
        var cpu = (PerToken(cpuBefore.Base, cpuAfter.Base), PerToken(cpuBefore.Pair, cpuAfter.Pair), PerToken(cpuBefore.Client, cpuAfter.Client));
        double busy = (cpuAfter.Base - cpuBefore.Base + cpuAfter.Pair - cpuBefore.Pair + cpuAfter.Client - cpuBefore.Client).TotalSeconds
                      / (windowS * Environment.ProcessorCount);
        return new(counted / windowS, batches > 0 ? (after.Steps - before.Steps) / batches : 0, batches > 0 ? prefills / batches : 0,
            batches + prefills > 0 ? 1000 * (after.Seconds - before.Seconds) / (batches + prefills) : 0,
            batches + prefills > 0 ? 1000 * (after.HostSeconds - before.HostSeconds) / (batches + prefills) : 0,
            pairForwards > 0 ? 1000 * (pairAfter.HostSeconds - pairBefore.HostSeconds + antiAfter.HostSeconds - antiBefore.HostSeconds) / pairForwards : 0,
            cpu, busy);
    }

    /// <summary>Load average over the last minute (Linux; NaN elsewhere): the machine's other jobs, reported beside the figures.</summary>
    private static double LoadAverage()
    {
        try { return double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { return double.NaN; }
    }

    /// <summary>A model's decode counters from its silo's /metrics (the base: silo 0 in every simulated cluster; the pair: silo 1).</summary>
    private static async Task<(double Steps, double Batches, double Prefills, double Seconds, double HostSeconds)> CountersAsync(LoopbackCluster c, int silo, string model)
    {
        var metrics = await c.GetAsync(silo, "/metrics");
        // Prometheus text from the OpenTelemetry exporter: name{model="…",otel_scope_name="…"} value (labels in any order).
        double Read(string name) => metrics.Split('\n')
            .Where(l => l.StartsWith(name + "{", StringComparison.Ordinal) && l[..l.IndexOf('}')].Contains($"model=\"{model}\"", StringComparison.Ordinal))
            .Select(l => double.Parse(l.Split(' ')[^1], CultureInfo.InvariantCulture)).FirstOrDefault();
        return (Read("proxyorleans_model_steps_total"), Read("proxyorleans_model_batches_total"), Read("proxyorleans_model_prefills_total"),
            Read("proxyorleans_model_compute_seconds_total"), Read("proxyorleans_model_host_compute_seconds_total"));
    }

    private static void WritePlots(string prefix, IReadOnlyList<(double S, double Base, double Proxy, double Model, double Sum)> sweep,
        IReadOnlyList<(int Streams, double Base, double Proxy)> throughput, Func<int, double> boundTokensPerSecond)
    {
        if (Path.GetDirectoryName(Path.GetFullPath(prefix)) is { } d) Directory.CreateDirectory(d);
        var plt = new Plot();
        double[] xs = sweep.Select(x => x.S).ToArray();
        void Line(double[] ys, string label, LinePattern pattern)
        {
            var s = plt.Add.Scatter(xs, ys);
            s.LegendText = label;
            s.LinePattern = pattern;
            s.MarkerSize = 6;
        }
        Line(sweep.Select(x => x.Sum).ToArray(), "sum of the models (the reference's sequential loop)", LinePattern.Dotted);
        Line(sweep.Select(x => x.Proxy).ToArray(), "proxy-tuned step (measured)", LinePattern.Solid);
        Line(sweep.Select(x => x.Base).ToArray(), "base alone step (measured)", LinePattern.Solid);
        Line(sweep.Select(x => x.Model).ToArray(), "slowest model (max)", LinePattern.Dashed);
        plt.XLabel("simulated model step of the base (ms)");
        plt.YLabel("decode step at the coordinator (ms)");
        plt.Title("SIMULATED accelerators: step latency vs model step, one stream");
        plt.ShowLegend(Alignment.UpperLeft);
        plt.SavePng(prefix + "-latency.png", 900, 560);

        plt = new Plot();
        double[] positions = throughput.Select(t => Math.Log2(t.Streams)).ToArray();
        var b = plt.Add.Scatter(positions, throughput.Select(t => t.Base).ToArray());
        b.LegendText = "base alone";
        b.MarkerSize = 7;
        var p = plt.Add.Scatter(positions, throughput.Select(t => t.Proxy).ToArray());
        p.LegendText = "proxy-tuned (base + expert/anti-expert pair)";
        p.MarkerSize = 7;
        var bound = plt.Add.Scatter(positions, throughput.Select(t => boundTokensPerSecond(t.Streams)).ToArray());
        bound.LegendText = "latency model's bound: N rows per decode forward, no prefills, no CPU limit";
        bound.LinePattern = LinePattern.Dotted;
        plt.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            throughput.Select(t => new Tick(Math.Log2(t.Streams), t.Streams.ToString(CultureInfo.InvariantCulture))).ToArray());
        plt.XLabel("concurrent streams");
        plt.YLabel("aggregate tokens/s");
        plt.Title("SIMULATED accelerators (70B/7B on H200): throughput vs concurrency");
        plt.ShowLegend(Alignment.UpperLeft);
        plt.SavePng(prefix + "-throughput.png", 900, 560);
    }
}
