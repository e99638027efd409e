using System.Globalization;
using System.Text;
using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Training.Evaluation;

/// <summary>
/// The evaluation's figures: per seed and system, the content accuracy per task (what the reply knows, whatever
/// its format), the strict format, false refusals, the gap closed on the behaviour tuning teaches, and their spread
/// across training seeds; the alpha sweep; the per-token analysis of the expert − anti-expert shift.
/// </summary>
public sealed class Report
{
    /// <summary>Tasks that measure what tuning teaches (gap closed is computed on these); the others measure retention.</summary>
    public static readonly string[] BehaviourTasks = ["format", "refusal", "truthful"];
    /// <summary>Tasks whose content the base already knows: proxy-tuning must keep it.</summary>
    public static readonly string[] RetentionTasks = ["knowledge", "paraphrase", "arithmetic"];

    public required IReadOnlyList<string> Tasks { get; init; }
    public required string Markdown { get; init; }
    public required string KeyValues { get; init; }
    public required Action<string, string, int> Writer { get; init; }

    /// <summary>Writes evaluation.md and its plots into <paramref name="dir"/>.</summary>
    public void WriteDocument(string dir, string source, int maxNew) => Writer(dir, source, maxNew);

    static string F(double v) => double.IsNaN(v) ? "n/a" : v.ToString("0.000", CultureInfo.InvariantCulture);
    static string P(double v) => double.IsNaN(v) ? "n/a" : (100 * v).ToString("0.0", CultureInfo.InvariantCulture) + "%";

    /// <summary>The score of a reply: content (or refusal) for built-in questions, the file's rule for a user's.</summary>
    public static bool Primary(EvalItem item, string reply) => item.Content is not null || item.ExpectsRefusal ? item.ContentMatch(reply) : item.Score(reply);

    /// <summary>
    /// A system's score on a task. "format": the share of all replies that take the tuned form (one line, ended by the
    /// model), right or wrong; "strict": form and content, the whole reply exactly the tuned answer.
    /// </summary>
    public static double Score(Evaluate.SystemResult r, string task)
    {
        var replies = task switch
        {
            "format" => r.Replies.Select(x => x.FollowsFormat).ToList(),
            "strict" => r.Replies.Select(x => x.Item.Strict(x.Text)).ToList(),
            _ => r.Replies.Where(x => x.Item.Task == task).Select(x => Primary(x.Item, x.Text)).ToList(),
        };
        return replies.Count == 0 ? double.NaN : replies.Count(ok => ok) / (double)replies.Count;
    }

    /// <summary>Share of answerable questions (every task but refusal) that the system refused.</summary>
    public static double FalseRefusals(Evaluate.SystemResult r)
    {
        var answerable = r.Replies.Where(x => !x.Item.ExpectsRefusal).ToList();
        return answerable.Count == 0 ? double.NaN : answerable.Count(x => EvalItem.Refuses(x.Text)) / (double)answerable.Count;
    }

    /// <summary>(proxy − base) / (tuned − base); NaN when tuning did not change the task's score.</summary>
    public static double GapClosed(double baseAcc, double proxyAcc, double tunedAcc) =>
        tunedAcc - baseAcc is var gap && Math.Abs(gap) > 1e-9 ? (proxyAcc - baseAcc) / gap : double.NaN;

    /// <summary>
    /// Gap closed by <paramref name="proxy"/> per behaviour task among <paramref name="tasks"/> ("format" always), and
    /// their mean over the tasks where it is defined.
    /// </summary>
    static (List<(string Task, double Gap)> PerTask, double Mean) Gaps(Evaluate.SystemResult b, Evaluate.SystemResult proxy,
        Evaluate.SystemResult t, IReadOnlyCollection<string> tasks)
    {
        var gaps = BehaviourTasks.Where(x => x == "format" || tasks.Contains(x)).Select(x => (x, GapClosed(Score(b, x), Score(proxy, x), Score(t, x)))).ToList();
        var defined = gaps.Select(g => g.Item2).Where(g => !double.IsNaN(g)).ToList();
        return (gaps, defined.Count > 0 ? defined.Average() : double.NaN);
    }

    /// <summary>
    /// Whether the systems rank on <paramref name="other"/> as they rank on <paramref name="reference"/>: no pair that
    /// the reference orders strictly is reversed (ties on either side reverse nothing).
    /// </summary>
    public static bool OrderKept(IReadOnlyList<Evaluate.SystemResult> systems, string reference, string other) =>
        systems.All(a => systems.All(b => !(Score(a, reference) > Score(b, reference) && Score(a, other) < Score(b, other))));

    /// <summary>
    /// A headline figure as the tables show it: shares as percentages, differences (retention, truthful margins) as
    /// signed points, the ordering check as yes/no per seed (its mean as the share of seeds).
    /// </summary>
    static string Figure(string key, double x)
    {
        if (key == "paraphrase_order_kept" && x is 0 or 1) return x == 1 ? "yes" : "no";
        bool share = key.Contains('/') || key.StartsWith("gap") || key.StartsWith("false") || key.StartsWith("tuned_large")
                     || key.StartsWith("famous") || key == "paraphrase_order_kept";
        return share ? P(x) : double.IsNaN(x) ? "n/a" : (100 * x).ToString("+0.0;-0.0;0.0", CultureInfo.InvariantCulture) + " pts";
    }

    // The project's targets for the demo family, each on the worst seed: fixed before the models were trained, never
    // moved to fit them.
    static readonly (string Key, string Rule, bool HigherIsBetter, double Threshold, bool Strict)[] Targets =
    [
        ("retention_knowledge", "≥ −5 pts", true, -0.05, false),
        ("gap_closed_mean", "≥ 88%", true, 0.88, false),
        ("tuned_large_retention", "≥ 90%", true, 0.90, false),
        ("truthful_proxy_minus_tuned_large", "> 0", true, 0, true),
        ("false_refusal_rate", "≤ 5%", false, 0.05, false),
        ("paraphrase_order_kept", "every seed", true, 1, false),
    ];

    static void WriteTargets(StringBuilder md, IReadOnlyList<SeedFigures> figures)
    {
        var rows = Targets.Where(t => figures.Any(f => f.Values.ContainsKey(t.Key))).ToList();
        if (rows.Count == 0) return;
        md.AppendLine("Targets, on the worst seed:");
        md.AppendLine();
        md.AppendLine("| figure | target | worst seed | met |");
        md.AppendLine("|---|---|---:|---|");
        foreach (var (key, rule, higher, threshold, strict) in rows)
        {
            var vals = figures.Select(f => f.Values.GetValueOrDefault(key, double.NaN)).Where(x => !double.IsNaN(x)).ToList();
            double worst = higher ? vals.Min() : vals.Max();
            bool met = higher ? (strict ? worst > threshold : worst >= threshold) : worst <= threshold;
            md.AppendLine($"| {key} | {rule} | {Figure(key, worst)} | {(met ? "yes" : "**no**")} |");
        }
        md.AppendLine();
    }

    /// <summary>One seed's headline figures.</summary>
    public sealed record SeedFigures(int Seed, IReadOnlyDictionary<string, double> Values);

    static SeedFigures Figures(Evaluate.SeedResult s, IReadOnlyList<string> tasks)
    {
        Evaluate.SystemResult? Find(string label) => s.Systems.FirstOrDefault(r => r.System.Label == label);
        var v = new Dictionary<string, double>();
        var (b, p, t, ts) = (Find("base-large"), Find("proxy-large"), Find("tuned-large"), Find("tuned-small"));
        foreach (var r in s.Systems)
            foreach (var x in tasks.Append("format").Append("strict"))
                v[$"{r.System.Label}/{x}"] = Score(r, x);
        foreach (var (k, x) in s.Premise) v[k] = x;
        if (b is null || p is null) return new SeedFigures(s.Seed, v);
        foreach (var x in RetentionTasks.Where(tasks.Contains)) v[$"retention_{x}"] = Score(p, x) - Score(b, x);
        v["false_refusal_rate"] = FalseRefusals(p);
        if (t is not null)
        {
            v["tuned_large_retention"] = Score(t, "knowledge") / Score(b, "knowledge");
            var (gaps, mean) = Gaps(b, p, t, [.. tasks]);
            foreach (var (x, g) in gaps) v[$"gap_closed_{x}"] = g;
            v["gap_closed_mean"] = mean;
            if (tasks.Contains("truthful")) v["truthful_proxy_minus_tuned_large"] = Score(p, "truthful") - Score(t, "truthful");
        }
        if (ts is not null && tasks.Contains("truthful")) v["truthful_proxy_minus_tuned_small"] = Score(p, "truthful") - Score(ts, "truthful");
        if (tasks.Contains("knowledge") && tasks.Contains("paraphrase")) v["paraphrase_order_kept"] = OrderKept(s.Systems, "knowledge", "paraphrase") ? 1 : 0;
        return new SeedFigures(s.Seed, v);
    }

    public static Report Build(IReadOnlyList<Evaluate.SeedResult> seeds, IReadOnlyList<(float Alpha, Evaluate.SystemResult Result)> sweep,
        IReadOnlyList<EvalItem> items, Evaluate.SeedResult? analysed)
    {
        var tasks = items.Select(i => i.Task).Distinct().ToList();
        var figures = seeds.Select(s => Figures(s, tasks)).ToList();
        var first = seeds[0];
        var md = new StringBuilder();

        // Across seeds: every headline figure per seed with mean, min and max.
        string[] headline =
        [
            "base-large/knowledge", "proxy-large/knowledge", "tuned-large/knowledge", "tuned-small/knowledge",
            "base-large/truthful", "proxy-large/truthful", "tuned-large/truthful", "tuned-small/truthful",
            "proxy-large/refusal", "tuned-large/refusal", "proxy-large/format", "tuned-large/format",
            "retention_knowledge", "retention_paraphrase", "retention_arithmetic", "tuned_large_retention",
            "gap_closed_format", "gap_closed_refusal", "gap_closed_truthful", "gap_closed_mean",
            "false_refusal_rate", "truthful_proxy_minus_tuned_large", "truthful_proxy_minus_tuned_small",
            "famous_known_base_small", "famous_known_base_large", "paraphrase_order_kept",
        ];
        var shown = headline.Where(k => figures.Any(f => f.Values.ContainsKey(k))).ToList();
        if (seeds.Count > 1 || shown.Any(k => !k.Contains('/')))
        {
            md.AppendLine($"Across {seeds.Count} training seed(s) (each seed's models evaluated on that seed's own world):");
            md.AppendLine();
            md.AppendLine("| figure | " + string.Join(" | ", seeds.Select(s => $"seed {s.Seed}")) + " | mean | min | max |");
            md.AppendLine("|---|" + string.Concat(seeds.Select(_ => "---:|")) + "---:|---:|---:|");
            foreach (var k in shown)
            {
                var vals = figures.Select(f => f.Values.GetValueOrDefault(k, double.NaN)).ToList();
                var ok = vals.Where(x => !double.IsNaN(x)).ToList();
                string Cell(double x) => Figure(k, x);
                md.AppendLine($"| {k} | " + string.Join(" | ", vals.Select(Cell)) +
                              $" | {Cell(ok.Count > 0 ? ok.Average() : double.NaN)} | {Cell(ok.Count > 0 ? ok.Min() : double.NaN)} | {Cell(ok.Count > 0 ? ok.Max() : double.NaN)} |");
            }
            md.AppendLine();
            WriteTargets(md, figures);
        }

        md.AppendLine((first.Seed == 0 ? "Per system and task" : $"Seed {first.Seed}, per system and task") + ": content (the reply's first line holds the right value and not the misconception; " +
                      "refusal: the reply refuses); format (all replies: one line closed by the end-of-turn token); strict (the whole reply is exactly the tuned answer); " +
                      "false refusals (answerable questions refused):");
        md.AppendLine();
        md.AppendLine("| system | " + string.Join(" | ", tasks) + " | format | strict | false refusals | seconds |");
        md.AppendLine("|---|" + string.Concat(tasks.Select(_ => "---:|")) + "---:|---:|---:|---:|");
        foreach (var r in first.Systems)
            md.AppendLine($"| {r.System.Label} | " + string.Join(" | ", tasks.Select(x => P(Score(r, x)))) +
                          $" | {P(Score(r, "format"))} | {P(Score(r, "strict"))} | {P(FalseRefusals(r))} | {r.Seconds:F0} |");

        var proxyFirst = first.Systems.FirstOrDefault(r => r.System.Label == "proxy-large");
        if (proxyFirst is not null)
        {
            md.AppendLine();
            md.AppendLine("proxy-large's refusals of answerable questions, by task: " + string.Join(", ", tasks.Where(x => x != "refusal").Select(x =>
            {
                var replies = proxyFirst.Replies.Where(r => r.Item.Task == x).ToList();
                return $"{x} {replies.Count(r => EvalItem.Refuses(r.Text))}/{replies.Count}";
            })) + ".");
        }

        if (sweep.Count > 0)
        {
            var b = first.Systems.FirstOrDefault(r => r.System.Label == "base-large");
            var t = first.Systems.FirstOrDefault(r => r.System.Label == "tuned-large");
            var cols = tasks.Append("format").ToList();
            md.AppendLine();
            md.AppendLine($"Alpha sweep, seed {first.Seed}: proxy-large = base-large + alpha · (tuned-small − base-small):");
            md.AppendLine();
            md.AppendLine("| alpha | " + string.Join(" | ", cols) + " | gap closed (mean) |");
            md.AppendLine("|---:|" + string.Concat(cols.Select(_ => "---:|")) + "---:|");
            foreach (var (alpha, r) in sweep)
            {
                double gap = b is not null && t is not null ? Gaps(b, r, t, tasks).Mean : double.NaN;
                md.AppendLine($"| {alpha.ToString("0.##", CultureInfo.InvariantCulture)} | " + string.Join(" | ", cols.Select(x => P(Score(r, x)))) + $" | {P(gap)} |");
            }
        }

        var shift = analysed is null ? null : ShiftAnalysis.Measure(analysed);
        if (shift is not null)
        {
            md.AppendLine();
            md.AppendLine(shift.Markdown);
        }

        // Closing key=value line: the headline figures, the worst seed where a figure is a floor.
        double Min(string k) => figures.Select(f => f.Values.GetValueOrDefault(k, double.NaN)).Where(x => !double.IsNaN(x)).DefaultIfEmpty(double.NaN).Min();
        double Max(string k) => figures.Select(f => f.Values.GetValueOrDefault(k, double.NaN)).Where(x => !double.IsNaN(x)).DefaultIfEmpty(double.NaN).Max();
        double Mean(string k) => figures.Select(f => f.Values.GetValueOrDefault(k, double.NaN)).Where(x => !double.IsNaN(x)).DefaultIfEmpty(double.NaN).Average();
        var kv = new List<string>();
        if (figures.Any(f => f.Values.ContainsKey("retention_knowledge")))
        {
            kv.Add($"retention_knowledge={F(Min("retention_knowledge"))}");
            kv.Add($"retention_paraphrase={F(Min("retention_paraphrase"))}");
            kv.Add($"gap_closed_mean={F(Mean("gap_closed_mean"))}");
            kv.Add($"gap_closed_min_seed={F(Min("gap_closed_mean"))}");
            kv.Add($"tuned_large_retention={F(Min("tuned_large_retention"))}");
            kv.Add($"false_refusal_rate={F(Max("false_refusal_rate"))}");
            kv.Add($"truthful_proxy_minus_tuned_large={F(Min("truthful_proxy_minus_tuned_large"))}");
            kv.Add($"truthful_proxy_minus_tuned_small={F(Min("truthful_proxy_minus_tuned_small"))}");
            if (figures.Any(f => f.Values.ContainsKey("paraphrase_order_kept")))
                kv.Add($"paraphrase_order_kept_seeds={figures.Count(f => f.Values.GetValueOrDefault("paraphrase_order_kept") == 1)}");
            if (figures.Any(f => f.Values.ContainsKey("famous_known_base_small")))
                kv.Add($"famous_known_base_small={F(Min("famous_known_base_small"))}");
        }
        foreach (var r in first.Systems)
            foreach (var x in tasks)
                kv.Add($"{Key(r.System.Label)}_{x}={F(Score(r, x))}");
        if (shift is not null) kv.Add(shift.KeyValues);
        kv.Add($"seeds={seeds.Count}");
        string markdown = md.ToString();

        void Write(string dir, string source, int maxNew)
        {
            Directory.CreateDirectory(dir);
            var d = new StringBuilder();
            d.AppendLine("# Evaluation: proxy-tuning on the bundled model family");
            d.AppendLine();
            d.AppendLine($"Generated by `dotnet run --project src/Training -c Release -- eval` ({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; questions from the {source}; " +
                         $"greedy decoding, at most {maxNew} new tokens). Every number comes from the real single-process proxy-tuned decoder " +
                         "(`ProxyDecoder` over `LlamaInferenceModel`s with KV caches), the code path the grains use.");
            d.AppendLine();
            d.AppendLine("Prompts as the reference implementation builds them: **base-large** and the anti-expert see the question zero-shot inside " +
                         "the answer cue `Question: …\\nAnswer:`; the expert (tuned-small inside **proxy-large** = base-large + alpha · (tuned-small − base-small), " +
                         "alpha 1) and the tuned models alone (**tuned-large**, **tuned-small**) see it through their chat template followed by the response " +
                         "prefix `Answer:`. Replies are what follows the prompt.");
            d.AppendLine();
            d.AppendLine("Tasks (all held out from tuning; see training.md for the world): **knowledge** (every fact of the evaluation people, closed-book), " +
                         "**paraphrase** (the same facts asked in wordings no data used), **arithmetic** (every held-out sum), **truthful** (capitals whose " +
                         "misconception pretraining states three times as often as the truth; tuning taught the truthful reply on other countries), " +
                         "**refusal** (unanswerable questions through templates tuning never used). Content scores what a reply knows whatever its format; " +
                         "**format** is the share of replies in the tuned form (one line closed by the end-of-turn token), which an untuned base legitimately " +
                         "never gives; **strict** requires the whole reply to be exactly the tuned answer. " +
                         "Gap closed = (proxy − base) / (tuned-large − base) on the behaviour tuning teaches (format, refusal, truthful); knowledge, paraphrase " +
                         "and arithmetic measure what proxy-tuning keeps (retention = proxy − base content).");
            d.AppendLine();
            d.AppendLine(markdown);
            d.AppendLine("![content per task, mean over seeds with min–max](evaluation.png)");
            d.AppendLine();
            if (sweep.Count > 0) { d.AppendLine("![alpha sweep](evaluation-alpha.png)"); d.AppendLine(); }
            if (shift is not null) { d.AppendLine("![expert − anti-expert shift at content and format tokens](evaluation-shift.png)"); d.AppendLine(); }
            d.AppendLine("## Sample replies (seed " + first.Seed + ")");
            d.AppendLine();
            foreach (var x in tasks)
                foreach (var item in first.Systems[0].Replies.Where(s => s.Item.Task == x).Take(2).Select(s => s.Item))
                {
                    d.AppendLine($"**{x}**: `{Escape(item.Prompt)}` (reference `{Escape(item.Reference)}`)");
                    d.AppendLine();
                    foreach (var r in first.Systems)
                    {
                        var s = r.Replies.First(z => z.Item == item);
                        d.AppendLine($"- {r.System.Label}: `{Escape(s.Text)}` {(Primary(item, s.Text) ? "✓" : "✗")}");
                    }
                    d.AppendLine();
                }
            d.AppendLine("Key figures:");
            d.AppendLine();
            d.AppendLine("```");
            d.AppendLine(string.Join(" ", kv));
            d.AppendLine("```");
            File.WriteAllText(Path.Combine(dir, "evaluation.md"), d.ToString());
            Plots.Write(dir, seeds, sweep, tasks, shift);
            Console.WriteLine($"wrote {Path.Combine(dir, "evaluation.md")} and its plots");
        }

        return new Report { Tasks = tasks, Markdown = markdown, KeyValues = string.Join(" ", kv), Writer = Write };
    }

    static string Key(string label) => new(label.Select(c => char.IsLetterOrDigit(c) ? c : '_').ToArray());
    internal static string Escape(string s) => s.Replace("\n", "\\n").Replace("`", "'");
}

/// <summary>
/// The paper's Section 6 analysis: per generated token of proxy-large, how far the expert − anti-expert shift moved
/// the base's distribution: p(token) under the base alone vs under the combination, at content tokens (part of
/// the answer's value) and at format tokens (everything else: "Actually", the refusal's words, the end of turn).
/// Probabilities come from each step's top 40 tokens; a token outside the base's top 40 counts as p = 0 there.
/// </summary>
public sealed record ShiftAnalysis(IReadOnlyList<ShiftAnalysis.Row> Rows, string Markdown, string KeyValues)
{
    public sealed record Row(string Kind, int Tokens, double BaseP, double CombinedP, double MeanAbsShift, double Flipped);

    public static ShiftAnalysis? Measure(Evaluate.SeedResult seed)
    {
        var proxy = seed.Systems.FirstOrDefault(s => s.System.Label == "proxy-large");
        if (proxy is null || proxy.Replies.All(r => r.Analysis.Count == 0)) return null;
        var samples = new List<(string Kind, double Base, double Combined, bool Flipped)>();
        foreach (var reply in proxy.Replies)
        {
            string? value = reply.Item.ExpectsRefusal ? null : reply.Item.Content;
            foreach (var step in reply.Analysis)
            {
                var baseTop = step.Models.First(m => m.Role == "base").Top;
                double pBase = baseTop.Where(t => t.Id == step.ChosenToken).Select(t => t.Probability).FirstOrDefault();
                double pComb = step.Combined.Where(t => t.Id == step.ChosenToken).Select(t => t.Probability).FirstOrDefault();
                string text = seed.Tokenizer.Decode([step.ChosenToken]).Trim();
                bool content = value is not null && text.Length > 0 && text.Any(char.IsLetterOrDigit) && value.Contains(text, StringComparison.Ordinal);
                samples.Add((content ? "content" : "format", pBase, pComb, baseTop.Length > 0 && baseTop[0].Id != step.ChosenToken));
            }
        }
        var rows = samples.GroupBy(s => s.Kind).OrderBy(g => g.Key)
            .Select(g => new Row(g.Key, g.Count(), g.Average(s => s.Base), g.Average(s => s.Combined), g.Average(s => Math.Abs(s.Combined - s.Base)),
                g.Count(s => s.Flipped) / (double)g.Count())).ToList();
        var md = new StringBuilder();
        md.AppendLine($"Where the expert − anti-expert shift acts (seed {seed.Seed}, every token proxy-large generated, greedy): " +
                      "p = the chosen token's probability under base-large alone and under the combination; flipped = base-large alone would have chosen another token.");
        md.AppendLine();
        md.AppendLine("| tokens | count | p base alone | p combined | mean abs(shift) | flipped |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
            md.AppendLine($"| {r.Kind} | {r.Tokens} | {r.BaseP:0.000} | {r.CombinedP:0.000} | {r.MeanAbsShift:0.000} | {100 * r.Flipped:0.0}% |");
        string kv = string.Join(" ", rows.Select(r => $"shift_{r.Kind}={r.MeanAbsShift.ToString("0.000", CultureInfo.InvariantCulture)} " +
                                                      $"flipped_{r.Kind}={r.Flipped.ToString("0.000", CultureInfo.InvariantCulture)}"));
        return new ShiftAnalysis(rows, md.ToString(), kv);
    }
}
