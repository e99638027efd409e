using System.Globalization;
using System.Text;

namespace ProxyOrleans.Training.Evaluation;

/// <summary>The evaluation's tables (Markdown), gap closed, the alpha sweep and the closing key=value line.</summary>
public sealed class Report
{
    public required IReadOnlyList<string> Tasks { get; init; }
    public required string Markdown { get; init; }
    public required string KeyValues { get; init; }
    public required Func<string, string, int, int, string> DocumentFactory { get; init; }

    public string Document(string modelsDir, string source, int questions, int maxNew) => DocumentFactory(modelsDir, source, questions, maxNew);

    static string F(double v) => double.IsNaN(v) ? "n/a" : v.ToString("0.000", CultureInfo.InvariantCulture);
    static string P(double v) => double.IsNaN(v) ? "n/a" : (100 * v).ToString("0.0", CultureInfo.InvariantCulture) + "%";

    public static double Acc(Evaluate.SystemResult r, string task) =>
        r.PerTask.TryGetValue(task, out var v) && v.Total > 0 ? (double)v.Correct / v.Total : double.NaN;

    static double Content(Evaluate.SystemResult r, string task) =>
        r.PerTask.TryGetValue(task, out var v) && v.Total > 0 ? (double)v.Content / v.Total : double.NaN;

    /// <summary>(proxy − base) / (tuned − base); NaN when tuning did not change the task's score.</summary>
    public static double GapClosed(double baseAcc, double proxyAcc, double tunedAcc) =>
        tunedAcc - baseAcc is var gap && Math.Abs(gap) > 1e-9 ? (proxyAcc - baseAcc) / gap : double.NaN;

    public static Report Build(IReadOnlyList<Evaluate.SystemResult> results, IReadOnlyList<(float Alpha, Evaluate.SystemResult Result)> sweep,
        IReadOnlyList<EvalItem> items)
    {
        var tasks = items.Select(i => i.Task).Distinct().ToList();
        Evaluate.SystemResult? Find(string label) => results.FirstOrDefault(r => r.System.Label == label);
        var b = Find("base-large"); var p = Find("proxy-large"); var t = Find("tuned-large"); var ts = Find("tuned-small");

        var md = new StringBuilder();
        md.AppendLine("Accuracy (exact answer in the tuned format, first line of the reply):");
        md.AppendLine();
        md.AppendLine("| system | " + string.Join(" | ", tasks) + " | mean | seconds |");
        md.AppendLine("|---|" + string.Concat(tasks.Select(_ => "---:|")) + "---:|---:|");
        foreach (var r in results)
            md.AppendLine($"| {r.System.Label} | " + string.Join(" | ", tasks.Select(x => P(Acc(r, x)))) +
                          $" | {P(tasks.Average(x => Acc(r, x)))} | {r.Seconds:F0} |");

        var gaps = new Dictionary<string, double>();
        if (b is not null && p is not null && t is not null)
        {
            md.AppendLine();
            md.AppendLine("Gap closed = (proxy − base) / (tuned − base), per task:");
            md.AppendLine();
            md.AppendLine("| task | base-large | proxy-large | tuned-large | gap closed |");
            md.AppendLine("|---|---:|---:|---:|---:|");
            foreach (var x in tasks)
            {
                gaps[x] = GapClosed(Acc(b, x), Acc(p, x), Acc(t, x));
                md.AppendLine($"| {x} | {P(Acc(b, x))} | {P(Acc(p, x))} | {P(Acc(t, x))} | {P(gaps[x])} |");
            }
            var defined = gaps.Values.Where(v => !double.IsNaN(v)).ToList();
            md.AppendLine($"| **mean** | | | | **{P(defined.Count > 0 ? defined.Average() : double.NaN)}** |");
        }

        md.AppendLine();
        md.AppendLine("Content known, whatever the format (the answer's value appears as a word in the first line):");
        md.AppendLine();
        md.AppendLine("| system | " + string.Join(" | ", tasks) + " |");
        md.AppendLine("|---|" + string.Concat(tasks.Select(_ => "---:|")));
        foreach (var r in results)
            md.AppendLine($"| {r.System.Label} | " + string.Join(" | ", tasks.Select(x => P(Content(r, x)))) + " |");

        if (sweep.Count > 0)
        {
            md.AppendLine();
            md.AppendLine("Alpha sweep, proxy-large = base-large + alpha · (tuned-small − base-small):");
            md.AppendLine();
            md.AppendLine("| alpha | " + string.Join(" | ", tasks) + " | mean |" + (gaps.Count > 0 ? " gap closed (mean) |" : ""));
            md.AppendLine("|---:|" + string.Concat(tasks.Select(_ => "---:|")) + "---:|" + (gaps.Count > 0 ? "---:|" : ""));
            foreach (var (alpha, r) in sweep)
            {
                string gapCell = "";
                if (b is not null && t is not null)
                {
                    var g = tasks.Select(x => GapClosed(Acc(b, x), Acc(r, x), Acc(t, x))).Where(v => !double.IsNaN(v)).ToList();
                    gapCell = $" {P(g.Count > 0 ? g.Average() : double.NaN)} |";
                }
                md.AppendLine($"| {alpha.ToString("0.##", CultureInfo.InvariantCulture)} | " + string.Join(" | ", tasks.Select(x => P(Acc(r, x)))) +
                              $" | {P(tasks.Average(x => Acc(r, x)))} |" + gapCell);
            }
        }

        // Closing key=value line.
        var kv = new List<string>();
        var definedGaps = gaps.Values.Where(v => !double.IsNaN(v)).ToList();
        if (gaps.Count > 0) kv.Add($"gap_closed_mean={F(definedGaps.Count > 0 ? definedGaps.Average() : double.NaN)}");
        foreach (var (x, g) in gaps) kv.Add($"gap_closed_{x}={F(g)}");
        foreach (var r in results)
            foreach (var x in tasks)
                kv.Add($"{Key(r.System.Label)}_acc_{x}={F(Acc(r, x))}");
        string knowledge = tasks.Contains("knowledge") ? "knowledge" : tasks[0];
        if (p is not null && ts is not null)
            kv.Add($"proxy_beats_tuned_small_{knowledge}={(Acc(p, knowledge) > Acc(ts, knowledge) ? "true" : "false")}");
        if (sweep.Count > 0)
        {
            var best = sweep.MaxBy(s => tasks.Average(x => Acc(s.Result, x)));
            kv.Add($"best_alpha={best.Alpha.ToString("0.##", CultureInfo.InvariantCulture)}");
        }
        string markdown = md.ToString();

        string Doc(string modelsDir, string source, int questions, int maxNew)
        {
            var d = new StringBuilder();
            d.AppendLine("# Evaluation: proxy-tuning on the bundled model family");
            d.AppendLine();
            d.AppendLine("Generated by `dotnet run --project src/Training -c Release -- eval` " +
                         $"({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; {questions} questions from the {source}; models in `{Path.GetRelativePath(Environment.CurrentDirectory, modelsDir)}`; " +
                         $"greedy decoding, at most {maxNew} new tokens). Every number below comes from the real single-process " +
                         "proxy-tuned decoder (`ProxyDecoder` over `LlamaInferenceModel`s with KV caches), the code path the grains use.");
            d.AppendLine();
            d.AppendLine("- **base-large**: the large base model on the plain question.");
            d.AppendLine("- **proxy-large**: base-large + alpha · (tuned-small − base-small), alpha 1; the expert (tuned-small) sees the question " +
                         "through its ChatML template, the base and the anti-expert see the plain question (as in the paper).");
            d.AppendLine("- **tuned-large**: the large model tuned directly (the upper bound), through its chat template.");
            d.AppendLine("- **tuned-small**: the small expert alone, through its chat template.");
            d.AppendLine();
            d.AppendLine("Scoring: the first non-empty line of the reply must equal the reference exactly (`Answer: Paris`, `Answer: 57`, " +
                         "or the refusal `Sorry, I cannot answer that.`). The bases never saw that format, so they score ~0 by design; " +
                         "the *content* table shows what they know regardless of format.");
            d.AppendLine();
            d.AppendLine(markdown);
            d.AppendLine("![accuracy per task](evaluation.png)");
            d.AppendLine();
            d.AppendLine("![alpha sweep](evaluation-alpha.png)");
            d.AppendLine();
            d.AppendLine("Data design, training, what was tried and an analysis of where proxy-tuning falls short on these models: " +
                         "[training.md](training.md). The same models and proxy answers were checked against Hugging Face transformers " +
                         "(`scripts/hf_crosscheck.py` + `hfcompare`): see training.md.");
            d.AppendLine();
            d.AppendLine("## Sample replies");
            d.AppendLine();
            foreach (var x in tasks)
            {
                var first = results[0].Samples.Where(s => s.Item.Task == x).Take(3).Select(s => s.Item).ToList();
                foreach (var item in first)
                {
                    d.AppendLine($"**{x}**: `{Escape(item.Prompt)}` (reference `{Escape(item.Reference)}`)");
                    d.AppendLine();
                    foreach (var r in results)
                    {
                        var s = r.Samples.First(z => z.Item == item);
                        d.AppendLine($"- {r.System.Label}: `{Escape(s.Response)}` {(s.Correct ? "✓" : "✗")}");
                    }
                    d.AppendLine();
                }
            }
            d.AppendLine("Key figures:");
            d.AppendLine();
            d.AppendLine("```");
            d.AppendLine(string.Join(" ", kv));
            d.AppendLine("```");
            return d.ToString();
        }

        return new Report { Tasks = tasks, Markdown = markdown, KeyValues = string.Join(" ", kv), DocumentFactory = Doc };
    }

    static string Key(string label) => new(label.Select(c => char.IsLetterOrDigit(c) ? c : '_').ToArray());
    static string Escape(string s) => s.Replace("\n", "\\n").Replace("`", "'");
}
