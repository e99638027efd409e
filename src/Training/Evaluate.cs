using System.Diagnostics;
using System.Globalization;
using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Tokenization;
using ProxyOrleans.Training.Data;
using ProxyOrleans.Training.Evaluation;

namespace ProxyOrleans.Training;

/// <summary>
/// `eval`: the paper's experiment on the bundled family, through the real single-process proxy-tuned decoder
/// (<see cref="ProxyDecoder"/> over <see cref="LlamaInferenceModel"/>s), prompted as the reference prompts:
/// the bases and the anti-expert zero-shot with the answer cue "Question: …\nAnswer:", the experts through
/// their chat template plus the response prefix "Answer:". Systems: base-large, proxy-large (base-large +
/// tuned-small − base-small), tuned-large, tuned-small. Greedy decoding. The built-in tasks are rebuilt from
/// each models directory's training report, over several training seeds (seeds not bundled are trained first).
/// </summary>
public static class Evaluate
{
    /// <summary>
    /// One evaluated system: a combination and how its models see the prompt. <paramref name="Chat"/>: the
    /// combination's base is a tuned model used alone, so it sees the chat template (and the response prefix).
    /// </summary>
    public sealed record SystemSpec(string Label, ProxyCombination Combination, bool Chat)
    {
        public ProxyPrompt Prompt(string text) => ProxyPrompt.FromText(text) with
        {
            AnswerCue = ProxyPrompt.QuestionAnswerCue, ExpertResponsePrefix = ResponsePrefix, BaseChatTemplate = Chat,
        };
    }

    /// <summary>The response prefix every expert (and every tuned model alone) is given.</summary>
    public const string ResponsePrefix = "Answer:";

    /// <param name="EndedTurn">The model ended its reply with the chat template's end-of-turn token (what tuning teaches).</param>
    public sealed record Reply(EvalItem Item, string Text, bool EndedTurn, IReadOnlyList<StepAnalysis> Analysis)
    {
        /// <summary>The tuned behaviour's form: one line, closed by the end-of-turn token.</summary>
        public bool FollowsFormat => EndedTurn && !Text.Trim().Contains('\n');
    }

    public sealed record SystemResult(SystemSpec System, IReadOnlyList<Reply> Replies, double Seconds);

    /// <summary>The evaluation of one models directory (one training seed).</summary>
    /// <param name="Premise">What each base knows of the facts tuning asks closed-book ("famous_known_base_small" and
    /// "_large"): the world's premise is that both know them, so that tuning them teaches a form, not content.</param>
    public sealed record SeedResult(int Seed, string ModelsDir, IReadOnlyList<SystemResult> Systems, ITextTokenizer Tokenizer)
    {
        public IReadOnlyDictionary<string, double> Premise { get; init; } = new Dictionary<string, double>();
    }

    static float ParseFloat(string s, string what) =>
        float.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out float v) && float.IsFinite(v) ? v
            : throw new FormatException($"{what}: '{s}' is not a finite number.");

    public static int Run(Dictionary<string, string> a)
    {
        string modelsDir = a.GetValueOrDefault("models") ?? ModelCatalog.FindDemoModelsDirectory(Environment.CurrentDirectory)
            ?? ModelCatalog.FindDemoModelsDirectory() ?? throw new DirectoryNotFoundException(
                "No models/demo directory found: pass --models DIR or train the demo models first (train --out models/demo).");
        int threads = Cli.Int(a, "threads", 1);
        int maxNew = Cli.Int(a, "max-new-tokens", 12);
        var alphas = a.GetValueOrDefault("alphas", "0,0.25,0.5,0.75,1,1.5,2").Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(s => ParseFloat(s, "--alphas")).ToArray();
        var options = new SamplingOptions { Temperature = 0, MaxNewTokens = maxNew };
        var extra = a.TryGetValue("combination", out var spec) ? ParseCombination(spec) : null;
        var log = Console.Out;

        if (a.TryGetValue("tasks", out var taskFile))
        {
            // A user's questions: printed; docs only where asked.
            var items = EvalTasks.Load(taskFile);
            var result = RunSeed(0, modelsDir, items, options, threads, extra, log);
            var report = Report.Build([result], [], items, null);
            log.WriteLine(report.Markdown);
            if (a.TryGetValue("docs", out var dir)) report.WriteDocument(dir, taskFile, maxNew);
            log.WriteLine(report.KeyValues);
            return 0;
        }

        var bundled = TrainingReport.Load(modelsDir);
        var seeds = a.GetValueOrDefault("seeds", $"{bundled.Seed},1,2").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => int.TryParse(s, out int v) ? v : throw new FormatException($"--seeds: '{s}' is not an integer.")).Distinct().ToArray();
        string work = a.GetValueOrDefault("work", Path.Combine(Path.GetTempPath(), "proxyorleans-seeds"));
        var results = new List<SeedResult>();
        IReadOnlyList<EvalItem>? firstItems = null;
        foreach (int seed in seeds)
        {
            string dir = seed == bundled.Seed ? modelsDir : Path.Combine(work, $"seed-{seed}");
            if (seed != bundled.Seed) EnsureTrained(dir, seed, bundled, threads, log);
            var world = WorldOf(dir, seed);
            var items = EvalTasks.BuiltIn(world);
            firstItems ??= items;
            log.WriteLine($"eval seed {seed}: {items.Count} questions ({string.Join(", ", items.GroupBy(i => i.Task).Select(g => $"{g.Key} {g.Count()}"))}) " +
                          $"from the world in {dir}; greedy, max {maxNew} new tokens");
            results.Add(RunSeed(seed, dir, items, options, threads, extra, log, analysis: results.Count == 0, premiseWorld: world));
        }

        // The alpha sweep on the first seed's models.
        var sweep = new List<(float Alpha, SystemResult Result)>();
        var proxy = results[0].Systems.FirstOrDefault(s => s.System.Label == "proxy-large");
        if (proxy is not null && !a.ContainsKey("no-sweep"))
        {
            using var catalog = Catalog(results[0].ModelsDir, threads);
            foreach (float alpha in alphas)
                sweep.Add((alpha, alpha == proxy.System.Combination.Alpha ? proxy
                    : RunSystem(proxy.System with { Label = $"proxy-large a={alpha:0.##}", Combination = proxy.System.Combination with { Alpha = alpha } },
                        catalog, firstItems!, options, log)));
        }

        if (a.TryGetValue("replies", out var repliesPath)) WriteReplies(repliesPath, results);
        var full = Report.Build(results, sweep, firstItems!, results[0]);
        log.WriteLine();
        log.WriteLine(full.Markdown);
        if (!a.ContainsKey("no-docs"))
        {
            full.WriteDocument(a.GetValueOrDefault("docs", "docs"), "built-in demo world", maxNew);
            WriteDemoQuestions(results[0]);
        }
        log.WriteLine(full.KeyValues);
        return 0;
    }

    /// <summary>Every reply of every system and seed, one JSON object per line: what the tables summarise.</summary>
    static void WriteReplies(string path, IEnumerable<SeedResult> results)
    {
        using var w = new StreamWriter(path);
        foreach (var seed in results)
            foreach (var system in seed.Systems)
                foreach (var r in system.Replies)
                    w.WriteLine(System.Text.Json.JsonSerializer.Serialize(new
                    {
                        seed = seed.Seed, system = system.System.Label, task = r.Item.Task, prompt = r.Item.Prompt, reference = r.Item.Reference,
                        reply = r.Text, ended_turn = r.EndedTurn, content = r.Item.ContentMatch(r.Text),
                    }));
    }

    /// <summary>
    /// The main job's demo questions, beside the models: per task, the first question (in evaluation order) that
    /// proxy-large answered right and, for the tasks whose content the base must supply, base-large too.
    /// </summary>
    static void WriteDemoQuestions(SeedResult seed)
    {
        var b = seed.Systems.FirstOrDefault(s => s.System.Label == "base-large");
        var p = seed.Systems.FirstOrDefault(s => s.System.Label == "proxy-large");
        if (b is null || p is null) return;
        var picked = new List<object>();
        foreach (var task in p.Replies.Select(r => r.Item.Task).Distinct())
        {
            bool baseMustKnow = Report.RetentionTasks.Contains(task);
            var hit = p.Replies.Select((r, i) => (r, i)).FirstOrDefault(x => x.r.Item.Task == task && Report.Primary(x.r.Item, x.r.Text)
                && (!baseMustKnow || Report.Primary(b.Replies[x.i].Item, b.Replies[x.i].Text)));
            if (hit.r is not null) picked.Add(new { task, prompt = hit.r.Item.Prompt, reference = hit.r.Item.Reference });
        }
        string path = Path.Combine(seed.ModelsDir, "demo-questions.json");
        File.WriteAllText(path, System.Text.Json.JsonSerializer.Serialize(picked, new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
        Console.WriteLine($"wrote {path} ({picked.Count} demo questions)");
    }

    /// <summary>The world a models directory was trained on; refuses models trained for another seed.</summary>
    public static DemoWorld WorldOf(string dir, int expectedSeed)
    {
        var report = TrainingReport.Load(dir);
        if (report.Seed != expectedSeed || report.World.Seed != expectedSeed)
            throw new InvalidDataException($"{dir} holds models trained with seed {report.Seed} (world seed {report.World.Seed}), not {expectedSeed}: " +
                                           "evaluating them against another seed's world would measure the mismatch. Retrain or pick the right directory.");
        return new DemoWorld(report.World);
    }

    // A seed trained earlier is reused only when it is a whole run of the bundled models' recipe: an experiment
    // left in the work directory (another learning rate, a --tune-only run) would otherwise be reported as the recipe.
    static void EnsureTrained(string dir, int seed, TrainingReport bundled, int threads, TextWriter log)
    {
        if (bundled.Recipe is null || bundled.Partial)
            throw new InvalidDataException("The bundled models' training report records no whole-run recipe (trained by an older trainer, or with " +
                                           "--only/--tune-only): retrain them with `train --out models/demo` before evaluating other seeds.");
        if (File.Exists(Path.Combine(dir, TrainingReport.FileName)))
        {
            var existing = TrainingReport.Load(dir);
            if (existing.Seed == seed && existing.Recipe == bundled.Recipe && !existing.Partial) return; // the recipe holds the world's options
            log.WriteLine($"{dir}: trained with another seed, world or recipe (or only in part); retraining.");
        }
        log.WriteLine($"training seed {seed} into {dir} (the bundled recipe with another seed)");
        var options = new PipelineOptions { OutDir = dir, Seed = seed, Threads = threads, World = bundled.World with { Seed = seed } };
        if (options.Recipe() != bundled.Recipe)
            throw new InvalidDataException("The bundled models were trained with another recipe than this trainer's defaults: " +
                                           "retrain them with `train --out models/demo` (or evaluate only --seeds " + bundled.Seed + ").");
        TrainPipeline.Run(options, log);
    }

    // Both bases asked zero-shot (the answer cue) about the famous people tuning asks closed-book.
    static Dictionary<string, double> PremiseCheck(ModelCatalog catalog, DemoWorld world, SamplingOptions options, TextWriter log)
    {
        var items = world.FamousPeople.SelectMany(p => DemoWorld.KnowledgeQuestions(p))
            .Select(q => new EvalItem("famous", q.Prompt, q.Answer, ScoringRule.Exact) { Content = q.Content }).ToList();
        var premise = new Dictionary<string, double>();
        foreach (var model in new[] { "base-small", "base-large" }.Where(catalog.Contains))
        {
            var r = RunSystem(new SystemSpec(model, ProxyCombination.BaseOnly(model), false), catalog, items, options, log);
            premise[$"famous_known_{model.Replace('-', '_')}"] = Report.Score(r, "famous");
        }
        return premise;
    }

    internal static ModelCatalog Catalog(string modelsDir, int threads)
    {
        var sources = Directory.GetDirectories(modelsDir).Where(d => File.Exists(Path.Combine(d, "config.json")))
            .Select(d => new ModelSource(Path.GetFileName(d), d)).ToList();
        if (sources.Count == 0) throw new DirectoryNotFoundException($"No model directories (with config.json) under '{modelsDir}'.");
        return new ModelCatalog(sources, (dir, name) => LlamaInferenceModel.Load(dir, new InferenceOptions { Threads = threads, Name = name }),
            dir => TokenizerLoader.Load(dir), includeDemoModels: false);
    }

    static SeedResult RunSeed(int seed, string modelsDir, IReadOnlyList<EvalItem> items, SamplingOptions options, int threads,
        SystemSpec? extra, TextWriter log, bool analysis = false, DemoWorld? premiseWorld = null)
    {
        using var catalog = Catalog(modelsDir, threads);
        var systems = DefaultSystems(catalog).ToList();
        if (extra is not null) systems.Add(extra);
        var results = systems.Select(s => RunSystem(s, catalog, items, options, log,
            analysisTopK: analysis && s.Label == "proxy-large" ? 40 : 0)).ToList();
        var tokenizer = catalog.Get(catalog.Names.Contains("base-large") ? "base-large" : catalog.Names.First()).Tokenizer;
        return new SeedResult(seed, modelsDir, results, tokenizer)
        {
            Premise = premiseWorld is null ? new Dictionary<string, double>() : PremiseCheck(catalog, premiseWorld, options, log),
        };
    }

    public static IEnumerable<SystemSpec> DefaultSystems(ModelCatalog catalog)
    {
        bool Has(params string[] names) => names.All(catalog.Contains);
        if (Has("base-large")) yield return new("base-large", ProxyCombination.BaseOnly("base-large"), false);
        if (Has("base-large", "tuned-small", "base-small"))
            yield return new("proxy-large", new ProxyCombination("base-large", [new ExpertPair("tuned-small", "base-small")], 1f), false);
        if (Has("tuned-large")) yield return new("tuned-large", ProxyCombination.BaseOnly("tuned-large"), true);
        if (Has("tuned-small")) yield return new("tuned-small", ProxyCombination.BaseOnly("tuned-small"), true);
    }

    /// <summary>"base=base-large,expert=tuned-small,anti=base-small,alpha=1[,chat=true]" (several expert/anti/weight groups allowed).</summary>
    public static SystemSpec ParseCombination(string spec)
    {
        string? b = null; float alpha = 1; bool chat = false;
        var pairs = new List<ExpertPair>();
        string? expert = null;
        foreach (var part in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = part.Split('=', 2);
            if (kv.Length != 2) throw new FormatException($"--combination: '{part}' is not key=value (keys: base, expert, anti, weight, alpha, chat).");
            switch (kv[0])
            {
                case "base": b = kv[1]; break;
                case "expert": expert = kv[1]; break;
                case "anti":
                    if (expert is null) throw new FormatException("--combination: 'anti' must follow its 'expert'.");
                    pairs.Add(new ExpertPair(expert, kv[1])); expert = null; break;
                case "weight":
                    if (pairs.Count == 0) throw new FormatException("--combination: 'weight' must follow an expert/anti pair.");
                    pairs[^1] = pairs[^1] with { Weight = ParseFloat(kv[1], "--combination weight") }; break;
                case "alpha": alpha = ParseFloat(kv[1], "--combination alpha"); break;
                case "chat": chat = kv[1] is "true" or "1"; break;
                default: throw new FormatException($"--combination: unknown key '{kv[0]}' (keys: base, expert, anti, weight, alpha, chat).");
            }
        }
        if (b is null) throw new FormatException("--combination needs base=MODEL.");
        if (expert is not null) throw new FormatException($"--combination: expert '{expert}' has no anti=MODEL.");
        string label = pairs.Count == 0 ? b : $"{b}+" + string.Join("+", pairs.Select(p => $"({p.Expert}-{p.AntiExpert})")) + $" a={alpha:0.##}";
        return new SystemSpec(label, new ProxyCombination(b, pairs, alpha), chat);
    }

    static SystemResult RunSystem(SystemSpec s, ModelCatalog catalog, IReadOnlyList<EvalItem> items, SamplingOptions options, TextWriter log,
        int analysisTopK = 0)
    {
        var decoder = new ProxyDecoder(catalog);
        var tokenizer = catalog.Get(s.Combination.Base).Tokenizer;
        string? endOfTurn = tokenizer.ChatTemplate?.EndOfTurnToken;
        var replies = new List<Reply>(items.Count);
        var clock = Stopwatch.StartNew();
        long tokens = 0;
        int right = 0;
        for (int i = 0; i < items.Count; i++)
        {
            var item = items[i];
            var result = decoder.Generate(s.Combination, s.Prompt(item.Prompt), options, new DecodeOptions { AnalysisTopK = analysisTopK });
            tokens += result.CompletionTokens;
            bool endedTurn = result.FinishReason == FinishReason.Eos && endOfTurn is not null && result.TokenIds.Length > 0
                             && tokenizer.IdToToken(result.TokenIds[^1]) == endOfTurn;
            replies.Add(new Reply(item, result.Text, endedTurn, result.Analysis));
            if (item.ContentMatch(result.Text)) right++;
            if ((i + 1) % 100 == 0 || i == items.Count - 1)
                log.Write($"\r  {s.Label,-22} {i + 1,4}/{items.Count}  content {right / (double)(i + 1),6:P1}  " +
                          $"{tokens / clock.Elapsed.TotalSeconds,6:F0} tok/s  ETA {clock.Elapsed.TotalSeconds / (i + 1) * (items.Count - i - 1),4:F0}s");
        }
        log.WriteLine();
        return new SystemResult(s, replies, clock.Elapsed.TotalSeconds);
    }

}
