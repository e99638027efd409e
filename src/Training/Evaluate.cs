using System.Diagnostics;
using System.Globalization;
using System.Text;
using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Tokenization;
using ProxyOrleans.Training.Evaluation;

namespace ProxyOrleans.Training;

/// <summary>
/// `eval`: the paper's main table on the bundled family, through the real single-process proxy-tuned decoder
/// (<see cref="ProxyDecoder"/> over a <see cref="ModelCatalog"/> of <see cref="LlamaInferenceModel"/>s):
/// base-large, proxy-tuned large (base-large + tuned-small − base-small), tuned-large, tuned-small, per task,
/// the gap closed (proxy − base) / (tuned − base), and an alpha sweep. Greedy decoding throughout.
/// </summary>
public static class Evaluate
{
    /// <summary>One evaluated system: a combination, and whether its base sees the chat template (standalone tuned models).</summary>
    public sealed record SystemSpec(string Label, ProxyCombination Combination, bool Chat);

    public sealed record SystemResult(SystemSpec System, IReadOnlyDictionary<string, (int Correct, int Content, int Total)> PerTask,
        IReadOnlyList<(EvalItem Item, string Response, bool Correct)> Samples, double Seconds);

    static float ParseFloat(string s, string what) =>
        float.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out float v) && float.IsFinite(v) ? v
            : throw new FormatException($"{what}: '{s}' is not a finite number.");

    public static int Run(Dictionary<string, string> a)
    {
        string modelsDir = a.GetValueOrDefault("models") ?? ModelCatalog.FindDemoModelsDirectory(Environment.CurrentDirectory)
            ?? ModelCatalog.FindDemoModelsDirectory() ?? throw new DirectoryNotFoundException(
                "No models/demo directory found: pass --models DIR or train the demo models first (train --out models/demo).");
        int threads = Cli.Int(a, "threads", 1);
        int perTask = Cli.Int(a, "per-task", 100);
        int seed = Cli.Int(a, "seed", 1234);
        int maxNew = Cli.Int(a, "max-new-tokens", 16);
        var alphas = a.GetValueOrDefault("alphas", "0,0.25,0.5,0.75,1,1.5,2").Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(s => ParseFloat(s, "--alphas")).ToArray();
        string? docs = a.ContainsKey("no-docs") ? null : a.GetValueOrDefault("docs", "docs");
        bool builtIn = !a.ContainsKey("tasks");
        var items = builtIn ? EvalTasks.BuiltIn(seed, perTask) : EvalTasks.Load(a["tasks"]);

        var sources = Directory.GetDirectories(modelsDir).Where(d => File.Exists(Path.Combine(d, "config.json")))
            .Select(d => new ModelSource(Path.GetFileName(d), d)).ToList();
        if (sources.Count == 0) throw new DirectoryNotFoundException($"No model directories (with config.json) under '{modelsDir}'.");
        using var catalog = new ModelCatalog(sources,
            (dir, name) => LlamaInferenceModel.Load(dir, new InferenceOptions { Threads = threads, Name = name }),
            dir => TokenizerLoader.Load(dir), includeDemoModels: false);
        using var chatCatalog = new ModelCatalog(sources,
            (dir, name) => catalog.Get(name).Model is var m ? new SharedModel(m) : throw new UnreachableException(),
            dir => new ChatTemplatedTokenizer(TokenizerLoader.Load(dir)), includeDemoModels: false);

        var systems = DefaultSystems(catalog).ToList();
        if (a.TryGetValue("combination", out var spec)) systems.Add(ParseCombination(spec));

        var log = Console.Out;
        log.WriteLine($"eval: {items.Count} questions ({string.Join(", ", items.GroupBy(i => i.Task).Select(g => $"{g.Key} {g.Count()}"))}) " +
                      $"from {(builtIn ? "the built-in demo world" : a["tasks"])}; models in {modelsDir}; greedy, max {maxNew} new tokens");
        var options = new SamplingOptions { Temperature = 0, MaxNewTokens = maxNew };
        var results = new List<SystemResult>();
        foreach (var s in systems) results.Add(RunSystem(s, s.Chat ? chatCatalog : catalog, items, options, log));
        if (a.ContainsKey("verbose"))
            foreach (var r in results)
                foreach (var (item, response, ok) in r.Samples)
                    log.WriteLine($"  [{r.System.Label}] {(ok ? "ok " : "BAD")} {item.Prompt} -> {response.Replace("\n", "\\n")}   (want {item.Reference})");

        var sweep = new List<(float Alpha, SystemResult Result)>();
        var proxy = systems.FirstOrDefault(s => s.Label == "proxy-large");
        if (proxy is not null && !a.ContainsKey("no-sweep"))
            foreach (float alpha in alphas)
            {
                var existing = results.FirstOrDefault(r => r.System == proxy && alpha == proxy.Combination.Alpha);
                var r = existing ?? RunSystem(proxy with { Label = $"proxy-large a={alpha:0.##}", Combination = proxy.Combination with { Alpha = alpha } },
                    catalog, items, options, log);
                sweep.Add((alpha, r));
            }

        var report = Report.Build(results, sweep, items);
        log.WriteLine();
        log.WriteLine(report.Markdown);
        if (docs is not null)
        {
            Directory.CreateDirectory(docs);
            File.WriteAllText(Path.Combine(docs, "evaluation.md"), report.Document(modelsDir, builtIn ? "built-in demo world" : a["tasks"], items.Count, maxNew));
            Plots.Write(Path.Combine(docs, "evaluation.png"), Path.Combine(docs, "evaluation-alpha.png"), results, sweep, report.Tasks);
            log.WriteLine($"wrote {Path.Combine(docs, "evaluation.md")}, evaluation.png, evaluation-alpha.png");
        }
        log.WriteLine(report.KeyValues);
        return 0;
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

    static SystemResult RunSystem(SystemSpec s, ModelCatalog catalog, IReadOnlyList<EvalItem> items, SamplingOptions options, TextWriter log)
    {
        var decoder = new ProxyDecoder(catalog);
        var per = new Dictionary<string, (int, int, int)>();
        var samples = new List<(EvalItem, string, bool)>();
        var clock = Stopwatch.StartNew();
        long tokens = 0;
        for (int i = 0; i < items.Count; i++)
        {
            var item = items[i];
            var result = decoder.Generate(s.Combination, ProxyPrompt.FromText(item.Prompt), options);
            tokens += result.CompletionTokens;
            bool ok = item.Score(result.Text);
            var (c, content, t) = per.GetValueOrDefault(item.Task);
            per[item.Task] = (c + (ok ? 1 : 0), content + (item.ContentMatch(result.Text) ? 1 : 0), t + 1);
            samples.Add((item, result.Text, ok));
            if ((i + 1) % 50 == 0 || i == items.Count - 1)
                log.Write($"\r  {s.Label,-22} {i + 1,4}/{items.Count}  acc {samples.Count(x => x.Item3) / (double)(i + 1),6:P1}  " +
                          $"{tokens / clock.Elapsed.TotalSeconds,6:F0} tok/s  ETA {clock.Elapsed.TotalSeconds / (i + 1) * (items.Count - i - 1),4:F0}s");
        }
        log.WriteLine();
        return new SystemResult(s, per, samples, clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// A tuned model evaluated on its own sees the question through its chat template, as a chat endpoint would
    /// send it: this tokenizer renders the template around plain prompts. Everything else is the model's tokenizer.
    /// </summary>
    sealed class ChatTemplatedTokenizer(ITextTokenizer inner) : ITextTokenizer
    {
        public int VocabSize => inner.VocabSize;
        public int? BosTokenId => inner.BosTokenId;
        public int? EosTokenId => inner.EosTokenId;
        public IChatTemplate? ChatTemplate => inner.ChatTemplate;
        public string? IdToToken(int id) => inner.IdToToken(id);
        public IReadOnlyCollection<int> EosTokenIds => inner.EosTokenIds;
        public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = true) => inner.Decode(ids, skipSpecialTokens);

        public int[] Encode(string text, bool addBos = true, bool parseSpecialTokens = false)
        {
            var template = inner.ChatTemplate ?? throw new InvalidOperationException("This model has no chat template (tokenizer_config.json chat_template).");
            return inner.Encode(template.Render([new ChatMessage("user", text)], addGenerationPrompt: true), addBos: false, parseSpecialTokens: true);
        }
    }

    /// <summary>The same loaded weights under a second catalog (disposed by the first).</summary>
    sealed class SharedModel(ILogitsModel inner) : ILogitsModel
    {
        public string Name => inner.Name;
        public int VocabSize => inner.VocabSize;
        public int MaxSequenceLength => inner.MaxSequenceLength;
        public long KvBytesPerToken => inner.KvBytesPerToken;
        public IModelSession CreateSession(int capacity) => inner.CreateSession(capacity);
        public void StepBatch(IReadOnlyList<IModelSession> sessions, ReadOnlySpan<int> tokens, Span<float> logits) => inner.StepBatch(sessions, tokens, logits);
        public void Dispose() { }
    }
}
