using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using ProxyOrleans.Abstractions;
using ProxyOrleans.Client.Benchmarks;
using ProxyOrleans.Inference.Models;
using TorchSharp;

namespace ProxyOrleans.Client.Commands;

/// <summary>
/// proxyorleans bench cluster: the demo trio over loopback TCP, one silo process per role, in the layouts that move
/// fewer bytes. Prints step latency, model vs coordination time, bytes per step; ends with one key=value line.
/// </summary>
public static class BenchClusterCommand
{
    public static Command Create()
    {
        var trio = new ModelTrioOptions();
        var tokens = new Option<int>("--tokens") { Description = "Tokens per generation.", DefaultValueFactory = _ => 48 };
        var runs = new Option<int>("--runs") { Description = "Measured generations per layout.", DefaultValueFactory = _ => 3 };
        var prompt = new Option<string>("--prompt") { DefaultValueFactory = _ => "Question: What is the capital of Elbonia?\nAnswer:" };
        var larger = new Option<bool>("--larger") { Description = "Also measure a random-weight trio of 24M-parameter models (the same tokenizers): how the overhead scales with model size." };
        var plot = new Option<string?>("--plot") { Description = "Write the latency breakdown as a PNG (e.g. docs/cluster-latency.png)." };
        var sim = new Option<bool>("--accelerator-sim") { Description = "SIMULATION instead: every model a real 32k-vocabulary model whose forwards are padded to simulated H200 latencies (70B base, 7B experts); with --plot P writes P-latency.png and P-throughput.png." };
        var quick = new Option<bool>("--quick") { Description = "With --accelerator-sim: a CI-sized run (one model step, 1 and 64 streams)." };
        var simWindow = new Option<double>("--sim-batch-window-ms") { Description = "With --accelerator-sim: the silos' ProxyOrleans:BatchWindowMs.", DefaultValueFactory = _ => 2 };
        var simTokenizer = new Option<string?>("--sim-tokenizer") { Description = "With --accelerator-sim: the Llama-2 tokenizer.model (default: ../shared/data/llama2-tokenizer beside the repository)." };
        var cmd = new Command("cluster", "Benchmark distributed proxy-tuning over loopback TCP (3-4 silo processes) in several layouts.")
        {
            trio.Base, trio.Expert, trio.AntiExpert, tokens, runs, prompt, trio.Verbose, larger, plot, sim, quick, simTokenizer, simWindow,
        };
        cmd.SetAction(async (p, ct) =>
        {
            try
            {
                if (p.GetValue(sim))
                {
                    var figures = await AcceleratorSimBench.RunAsync(new(p.GetValue(quick), p.GetValue(simTokenizer),
                        p.GetValue(plot) is { } prefix ? Path.ChangeExtension(prefix, null) : null, p.GetValue(trio.Verbose) ? Console.Out : null, p.GetValue(simWindow)), Console.Out, ct);
                    Console.WriteLine(AcceleratorSimBench.KeyValueLine(figures));
                    return 0;
                }
                var (b, e, a) = trio.Models(p);
                var log = p.GetValue(trio.Verbose) ? Console.Out : null;
                var results = new List<TrioResult> { await RunAsync("", b, e, a, p.GetValue(tokens), p.GetValue(runs), p.GetValue(prompt)!, log, ct) };
                if (p.GetValue(larger))
                {
                    string dir = Path.Combine(Path.GetTempPath(), "proxyorleans-bench-cluster-" + Environment.ProcessId);
                    try
                    {
                        var (lb, le, la) = LargerTrio(dir, b, e, a);
                        Console.WriteLine();
                        results.Add(await RunAsync("larger_", lb, le, la, p.GetValue(tokens), p.GetValue(runs), p.GetValue(prompt)!, log, ct));
                    }
                    finally { try { Directory.Delete(dir, true); } catch (IOException) { } }
                }
                if (p.GetValue(plot) is { } png)
                {
                    LatencyPlot.Write(png, results.SelectMany(r => r.Rows.Select(row => (Label(r, row), Breakdown(row)))).ToList());
                    Console.WriteLine($"latency breakdown written to {png}");
                }
                Console.WriteLine(string.Join(" ", results.SelectMany(r => r.KeyValues)));
                return 0;
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or InvalidOperationException)
            {
                Console.Error.WriteLine("error: " + ex.Message);
                return 2;
            }
        });
        return cmd;
    }

    /// <param name="BaseOnly">The base alone (no experts): one remote model, so no two models compete for the cores;
    /// its wire time is the messaging cost without that contention.</param>
    private sealed record Layout(string Key, string Title, bool Anywhere, bool Pairs, LogitsPrecision Precision, bool BaseOnly = false);

    private sealed record Row(Layout Layout, double StepMs, double ModelMs, double ServerMs, double FanOutMs, double CombineMs, double SampleMs,
        double StreamMs, double BytesPerStep, double TokensPerSecond, bool SameTokens, string Where);

    private sealed record TrioResult(string Prefix, string Description, List<string> KeyValues)
    {
        public List<Row> Rows { get; } = [];
    }

    /// <summary>One step's wall time split into where it went (ms); the parts add up to the step.</summary>
    private static (double Model, double InSilo, double Wire, double CombineSample, double Other) Breakdown(Row r) =>
        (r.ModelMs, r.ServerMs - r.ModelMs, r.FanOutMs - r.ServerMs, r.CombineMs + r.SampleMs, r.StepMs - r.FanOutMs - r.CombineMs - r.SampleMs);

    private static string Label(TrioResult t, Row r) => $"{(t.Prefix == "" ? "demo" : "larger")}: {r.Layout.Key}";

    /// <summary>
    /// A random-weight trio with the given models' tokenizers and vocabulary but larger bodies (hidden 512, 8 layers,
    /// GQA 8/4; 24M parameters with the demo vocabulary): ~6 ms per decode step each at 1 thread here, instead of
    /// the demo models' ~0.3-1 ms.
    /// </summary>
    private static ((string, string), (string, string), (string, string)) LargerTrio(string dir, params (string Name, string Path)[] models)
    {
        var made = new (string, string)[models.Length];
        for (int i = 0; i < models.Length; i++)
        {
            var (name, src) = models[i];
            var vocabulary = LlamaConfig.Load(src);   // the body of `bench model`'s random model on this model's vocabulary
            var config = BenchModelCommand.RandomModelConfig with
            {
                VocabSize = vocabulary.VocabSize, BosTokenId = vocabulary.BosTokenId, EosTokenIds = vocabulary.EosTokenIds,
                TieWordEmbeddings = vocabulary.TieWordEmbeddings, MaxPositionEmbeddings = vocabulary.MaxPositionEmbeddings,
            };
            long parameters = LlamaInferenceModel.ExpectedShapes(config).Values.Sum(s => s.Aggregate(1L, (x, y) => x * y));
            var larger = $"{name}-{Math.Round(parameters / 1e6):F0}m";
            var dest = Path.Combine(dir, larger);
            torch.manual_seed(i + 1);
            using (var m = new LlamaForCausalLM(config)) m.SavePretrained(dest);
            foreach (var f in Directory.GetFiles(src))   // tokenizer files; weights and config are the new model's
                if (Path.GetFileName(f) != "config.json" && !Path.GetFileName(f).Contains(".safetensors"))
                    File.Copy(f, Path.Combine(dest, Path.GetFileName(f)), overwrite: true);
            made[i] = (larger, dest);
        }
        return (made[0], made[1], made[2]);
    }

    /// <summary>Measures every layout for one trio, prints its table and returns its key=value figures (keys prefixed).</summary>
    private static async Task<TrioResult> RunAsync(string prefix, (string Name, string Path) b, (string Name, string Path) e, (string Name, string Path) a,
        int tokens, int runs, string prompt, TextWriter? log, CancellationToken ct)
    {
        var spec = new CombinationSpec(b.Name, [new ExpertSpec(e.Name, a.Name)], 1f);
        var result = new TrioResult(prefix, GenerateCommand.Describe(spec), []);
        var rows = result.Rows;
        int[]? reference = null;
        double fp16MaxDelta = 0, roundTripMs = 0; int fp16Matched = 0, fp16Steps = 0;
        Console.WriteLine($"bench cluster: {result.Description}, {tokens} tokens/generation, {runs} runs/layout, loopback TCP, {Environment.ProcessorCount} cores");
        Console.WriteLine("(figures taken on a shared machine are disturbed by other work)");

        // Several silo processes share this machine's cores: one torch thread each (docs/model.md: a second thread
        // does not pay for small models, and 3-4 processes x 2 threads oversubscribe 2 cores).
        var threads = new Dictionary<string, string> { ["ProxyOrleans:Threads"] = Environment.ProcessorCount <= 4 ? "1" : "0" };
        // Cluster 1: one silo per model plus a coordinator-only silo.
        var sw = Stopwatch.StartNew();
        await using (var c = await LoopbackCluster.StartAsync(
            [new("base", b), new("expert", e), new("anti", a), new("coordinator")], log, threads, ct))
        {
            Console.WriteLine($"cluster 1 (4 processes: base | expert | anti-expert | coordinator) up in {sw.Elapsed.TotalSeconds:F1} s");
            foreach (var l in new[]
                     {
                         new Layout("separate", "all separate (coordinator on its own silo)", true, false, LogitsPrecision.Float32),
                         new Layout("beside_base", "coordinator beside the base", false, false, LogitsPrecision.Float32),
                     })
            {
                var row = await MeasureAsync(c, spec, l, prompt, tokens, runs, reference, ct);
                reference ??= row.Tokens;
                rows.Add(row.Row);
            }
            var alone = new Layout("base_only", "base alone, coordinator on its own silo (no proxy-tuning)", true, false, LogitsPrecision.Float32, BaseOnly: true);
            rows.Add((await MeasureAsync(c, spec with { Experts = [] }, alone, prompt, tokens, runs, null, ct)).Row);
        }
        sw.Restart();
        await using (var c = await LoopbackCluster.StartAsync([new("base", b), new("pair", e, a)], log, threads, ct))
        {
            Console.WriteLine($"cluster 2 (2 processes: base | expert+anti-expert) up in {sw.Elapsed.TotalSeconds:F1} s");
            foreach (var l in new[]
                     {
                         new Layout("pair", "beside base + expert/anti-expert co-hosted (difference only)", false, true, LogitsPrecision.Float32),
                         new Layout("pair_fp16", "as above, fp16 transfer", false, true, LogitsPrecision.Float16),
                     })
            {
                var row = await MeasureAsync(c, spec, l, prompt, tokens, runs, reference, ct);
                rows.Add(row.Row);
            }
            // fp16's accuracy effect: combined logits of fp16 vs fp32 transfer over the same tokens.
            var exact = await GenerateAsync(c, spec, rows[0].Layout with { Anywhere = false, Pairs = true }, prompt, tokens, true, ct);
            var half = await GenerateAsync(c, spec, rows[0].Layout with { Anywhere = false, Pairs = true, Precision = LogitsPrecision.Float16 }, prompt, tokens, true, ct);
            for (int i = 0; i < Math.Min(exact.Logits.Count, half.Logits.Count); i++)
            {
                fp16Steps++;
                if (exact.Tokens[i] != half.Tokens[i]) break; // after a divergence the contexts differ
                fp16Matched++;
                var x = MemoryMarshal.Cast<byte, float>(exact.Logits[i]);
                var y = MemoryMarshal.Cast<byte, float>(half.Logits[i]);
                for (int j = 0; j < x.Length; j++) fp16MaxDelta = Math.Max(fp16MaxDelta, Math.Abs(x[j] - y[j]));
            }
            roundTripMs = await RoundTripAsync(c, b.Name, ct);
        }
        // Cluster 3: every model and the coordinator in one silo process: no wire at all, so what is left of
        // coordination is our own code (model grain, combine, sample) and the three models sharing the cores.
        sw.Restart();
        await using (var c = await LoopbackCluster.StartAsync([new("all", b, e, a)], log, threads, ct))
        {
            Console.WriteLine($"cluster 3 (1 process: base + expert + anti-expert) up in {sw.Elapsed.TotalSeconds:F1} s");
            var local = new Layout("one_silo", "all models and the coordinator in one silo (no wire)", false, true, LogitsPrecision.Float32);
            rows.Add((await MeasureAsync(c, spec, local, prompt, tokens, runs, reference, ct)).Row);
        }

        Console.WriteLine();
        Console.WriteLine($"{"layout",-62} {"step ms",8} {"model",7} {"coord",7} {"coord%",7} {"in-silo",8} {"wire",7} {"comb+smp",8} {"stream",7} {"KiB/step",9} {"tok/s",7} exact");
        foreach (var r in rows)
        {
            var d = Breakdown(r);
            double coord = r.StepMs - r.ModelMs;
            Console.WriteLine($"{r.Layout.Title,-62} {r.StepMs,8:F2} {r.ModelMs,7:F2} {coord,7:F2} {100 * coord / r.StepMs,6:F1}% {d.InSilo,8:F2} {d.Wire,7:F2} {d.CombineSample,8:F3} {r.StreamMs,7:F2} {r.BytesPerStep / 1024,9:F1} {r.TokensPerSecond,7:F1} {(r.Layout.BaseOnly ? "-" : r.SameTokens ? "yes" : "NO")}");
        }
        Console.WriteLine($"  where: {string.Join(" | ", rows.Select(r => r.Layout.Key + ": " + r.Where))}");
        Console.WriteLine($"fp16 transfer: max |Δ combined logit| {fp16MaxDelta:G3} over {fp16Matched} steps; tokens identical for {fp16Matched}/{fp16Steps} steps");
        Console.WriteLine($"one empty grain call, client -> silo over loopback TCP (median of 200): {roundTripMs:F3} ms");
        Console.WriteLine("step = coordinator wall time per token; model = slowest model's compute; coord = step − model, made of: in-silo = the model");
        Console.WriteLine("silo's own time around the compute (worker queue, thread hops, encoding), wire = the call's time outside the model silo");
        Console.WriteLine("(serialization, TCP, both schedulers), comb+smp = combining and sampling. stream = waiting for the client to take the");
        Console.WriteLine("token (overlaps the models).");
        var kv = result.KeyValues;
        foreach (var r in rows)
        {
            var k = prefix + r.Layout.Key;
            kv.Add($"{k}_step_ms={F(r.StepMs)}");
            kv.Add($"{k}_model_ms={F(r.ModelMs)}");
            kv.Add($"{k}_coord_pct={F(100 * (r.StepMs - r.ModelMs) / r.StepMs)}");
            kv.Add($"{k}_wire_ms={F(Breakdown(r).Wire)}");
            kv.Add($"{k}_bytes_per_step={r.BytesPerStep:F0}");
            if (!r.Layout.BaseOnly) kv.Add($"{k}_exact={(r.SameTokens ? 1 : 0)}");
        }
        kv.Add($"{prefix}roundtrip_ms={F(roundTripMs)}");
        kv.Add($"{prefix}fp16_max_abs_dlogit={fp16MaxDelta.ToString("G3", CultureInfo.InvariantCulture)}");
        kv.Add($"{prefix}fp16_tokens_identical={fp16Matched}/{fp16Steps}");
        return result;
    }

    /// <summary>The floor under any remote step: the median of 200 empty calls from the client to a model grain.</summary>
    private static async Task<double> RoundTripAsync(LoopbackCluster c, string model, CancellationToken ct)
    {
        var grain = c.Grains.GetGrain<IModelGrain>($"{model}#0");
        for (int i = 0; i < 20; i++) await grain.GetInfo().WaitAsync(ct);
        var times = new double[200];
        for (int i = 0; i < times.Length; i++)
        {
            long t = Stopwatch.GetTimestamp();
            await grain.GetInfo().WaitAsync(ct);
            times[i] = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
        }
        Array.Sort(times);
        return times[times.Length / 2];
    }

    private static string F(double x) => x.ToString("F3", CultureInfo.InvariantCulture);

    private static async Task<(Row Row, int[] Tokens)> MeasureAsync(LoopbackCluster c, CombinationSpec spec, Layout l, string prompt, int tokens, int runs,
        int[]? reference, CancellationToken ct)
    {
        await GenerateAsync(c, spec, l, prompt, tokens, false, ct); // warm-up (JIT, activations, tokenizer fetch)
        var stats = new List<GenerationStats>();
        int[] first = [];
        double wall = 0;
        for (int i = 0; i < runs; i++)
        {
            var sw = Stopwatch.StartNew();
            var r = await GenerateAsync(c, spec, l, prompt, tokens, false, ct);
            wall += sw.Elapsed.TotalSeconds;
            stats.Add(r.Stats);
            if (i == 0) first = r.Tokens;
        }
        var row = new Row(l, stats.Average(s => s.StepMs), stats.Average(s => s.ModelMs), stats.Average(s => s.ServerMs), stats.Average(s => s.FanOutMs), stats.Average(s => s.CombineMs),
            stats.Average(s => s.SampleMs), stats.Average(s => s.StreamMs), stats.Average(s => s.BytesPerStep), runs * tokens / wall,
            reference is null || first.SequenceEqual(reference), $"{stats[0].Layout} @coord {stats[0].CoordinatorSilo}");
        Console.WriteLine($"  {l.Title}: step {row.StepMs:F2} ms, {row.BytesPerStep / 1024:F0} KiB/step");
        return (row, first);
    }

    private static async Task<(GenerationStats Stats, int[] Tokens, List<byte[]> Logits)> GenerateAsync(LoopbackCluster c, CombinationSpec spec, Layout l,
        string prompt, int tokens, bool logits, CancellationToken ct)
    {
        var request = new GenerationRequest
        {
            Combination = spec, Prompt = prompt, TenantId = "bench", CoHostedPairs = l.Pairs, Precision = l.Precision, ReturnLogits = logits,
            Sampling = new SamplingSpec { Temperature = 0, MaxNewTokens = tokens, StopAtEos = false },
        };
        var id = "bench-" + Guid.NewGuid().ToString("N")[..10];
        var key = l.Anywhere ? GenerationKeys.Anywhere(id) : GenerationKeys.Create(spec.Base, id);
        var ids = new List<int>();
        var all = new List<byte[]>();
        GenerationStats? stats = null;
        await foreach (var ev in c.Grains.GetGrain<IGenerationGrain>(key).Generate(request, ct))
        {
            if (ev.TokenId >= 0) ids.Add(ev.TokenId);
            if (ev.Logits is not null) all.Add(ev.Logits);
            stats = ev.Stats ?? stats;
        }
        return (stats ?? throw new InvalidOperationException("No statistics in the final event."), ids.ToArray(), all);
    }
}
