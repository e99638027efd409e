using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using ProxyOrleans.Abstractions;

namespace ProxyOrleans.Client.Commands;

/// <summary>
/// proxyorleans bench cluster: the demo trio over loopback TCP, one silo process per role, in the layouts that move
/// fewer bytes. Prints step latency, model vs coordination time, bytes per step; ends with one key=value line.
/// </summary>
public static class BenchClusterCommand
{
    public static Command Create()
    {
        var baseOpt = new Option<string?>("--base") { Description = "Base model: name=dir (default: models/demo/base-large)." };
        var expertOpt = new Option<string?>("--expert") { Description = "Expert: name=dir (default: models/demo/tuned-small)." };
        var antiOpt = new Option<string?>("--anti-expert") { Description = "Anti-expert: name=dir (default: models/demo/base-small)." };
        var tokens = new Option<int>("--tokens") { Description = "Tokens per generation.", DefaultValueFactory = _ => 48 };
        var runs = new Option<int>("--runs") { Description = "Measured generations per layout.", DefaultValueFactory = _ => 3 };
        var prompt = new Option<string>("--prompt") { DefaultValueFactory = _ => "Question: What is the capital of Elbonia?\nAnswer:" };
        var verbose = new Option<bool>("--verbose") { Description = "Show the silos' output." };
        var cmd = new Command("cluster", "Benchmark distributed proxy-tuning over loopback TCP (3-4 silo processes) in several layouts.")
        {
            baseOpt, expertOpt, antiOpt, tokens, runs, prompt, verbose,
        };
        cmd.SetAction(async (p, ct) =>
        {
            try
            {
                var b = Model(p.GetValue(baseOpt), "base-large");
                var e = Model(p.GetValue(expertOpt), "tuned-small");
                var a = Model(p.GetValue(antiOpt), "base-small");
                await RunAsync(b, e, a, p.GetValue(tokens), p.GetValue(runs), p.GetValue(prompt)!, p.GetValue(verbose) ? Console.Out : null, ct);
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

    private static (string Name, string Path) Model(string? spec, string demoName)
    {
        if (spec is not null)
        {
            var eq = spec.IndexOf('=');
            var path = Path.GetFullPath(eq > 0 ? spec[(eq + 1)..] : spec);
            if (!Directory.Exists(path)) throw new DirectoryNotFoundException($"Model directory '{path}' does not exist.");
            return (eq > 0 ? spec[..eq] : new DirectoryInfo(path).Name, path);
        }
        var dir = Path.Combine(LoopbackCluster.FindRepoRoot(), "models", "demo", demoName);
        if (!File.Exists(Path.Combine(dir, "config.json")))
            throw new DirectoryNotFoundException($"Demo model '{demoName}' not found in {dir}: train the demo models (see README) or pass --base/--expert/--anti-expert name=dir.");
        return (demoName, dir);
    }

    private sealed record Layout(string Key, string Title, bool Anywhere, bool Pairs, LogitsPrecision Precision);

    private sealed record Row(Layout Layout, double StepMs, double ModelMs, double FanOutMs, double CombineMs, double SampleMs, double StreamMs,
        double BytesPerStep, double TokensPerSecond, bool SameTokens, string Where);

    public static async Task RunAsync((string Name, string Path) b, (string Name, string Path) e, (string Name, string Path) a,
        int tokens, int runs, string prompt, TextWriter? log, CancellationToken ct)
    {
        var spec = new CombinationSpec(b.Name, [new ExpertSpec(e.Name, a.Name)], 1f);
        var rows = new List<Row>();
        int[]? reference = null;
        double fp16MaxDelta = 0; int fp16Matched = 0, fp16Steps = 0;
        Console.WriteLine($"bench cluster: {GenerateCommand.Describe(spec)}, {tokens} tokens/generation, {runs} runs/layout, loopback TCP, {Environment.ProcessorCount} cores");
        Console.WriteLine("(figures taken on a shared machine are disturbed by other work)");

        // Several silo processes share this machine's cores: one torch thread each (platform-facts: a second thread
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
        }

        Console.WriteLine();
        Console.WriteLine($"{"layout",-62} {"step ms",8} {"model",7} {"coord",7} {"coord%",7} {"net+ser",8} {"combine",8} {"sample",7} {"stream",7} {"KiB/step",9} {"tok/s",7} exact");
        foreach (var r in rows)
        {
            double coord = r.StepMs - r.ModelMs;
            Console.WriteLine($"{r.Layout.Title,-62} {r.StepMs,8:F2} {r.ModelMs,7:F2} {coord,7:F2} {100 * coord / r.StepMs,6:F1}% {r.FanOutMs - r.ModelMs,8:F2} {r.CombineMs,8:F3} {r.SampleMs,7:F3} {r.StreamMs,7:F2} {r.BytesPerStep / 1024,9:F1} {r.TokensPerSecond,7:F1} {(r.SameTokens ? "yes" : "NO")}");
        }
        Console.WriteLine($"  where: {string.Join(" | ", rows.Select(r => r.Layout.Key + ": " + r.Where))}");
        Console.WriteLine($"fp16 transfer: max |Δ combined logit| {fp16MaxDelta:G3} over {fp16Matched} steps; tokens identical for {fp16Matched}/{fp16Steps} steps");
        Console.WriteLine("step = coordinator wall time per token; model = slowest model's compute; coord = step − model; net+ser = fan-out wall − model;");
        Console.WriteLine("stream = waiting for the client to take the token.");
        var kv = new List<string>();
        foreach (var r in rows)
        {
            kv.Add($"{r.Layout.Key}_step_ms={F(r.StepMs)}");
            kv.Add($"{r.Layout.Key}_model_ms={F(r.ModelMs)}");
            kv.Add($"{r.Layout.Key}_coord_pct={F(100 * (r.StepMs - r.ModelMs) / r.StepMs)}");
            kv.Add($"{r.Layout.Key}_bytes_per_step={r.BytesPerStep:F0}");
            kv.Add($"{r.Layout.Key}_exact={(r.SameTokens ? 1 : 0)}");
        }
        kv.Add($"fp16_max_abs_dlogit={fp16MaxDelta.ToString("G3", CultureInfo.InvariantCulture)}");
        kv.Add($"fp16_tokens_identical={fp16Matched}/{fp16Steps}");
        Console.WriteLine(string.Join(" ", kv));
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
        var row = new Row(l, stats.Average(s => s.StepMs), stats.Average(s => s.ModelMs), stats.Average(s => s.FanOutMs), stats.Average(s => s.CombineMs),
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
