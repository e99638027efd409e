using System.Globalization;
using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Training.Data;

namespace ProxyOrleans.Training.Evaluation;

/// <summary>
/// `probe`: where proxy-large's behaviour is decided, measured on the first reply token (docs/training.md uses it).
/// Per model, the mean log-probability that the first token is " Actually" or the misconception's first token on the
/// truthful questions (tuned and evaluated countries), and " Sorry" on the knowledge questions and their paraphrases;
/// then, with the reply forced to begin "Answer: Actually,", how often base-large alone and the proxy name the truth.
/// Prompts, cue and response prefix are the evaluation's (<see cref="Evaluate.SystemSpec"/>); greedy decoding.
/// </summary>
public static class Probe
{
    const int TopK = 200; // probabilities below the 200th token count as e^-13.8 (1e-6)
    const double Floor = 1e-6;

    public static int Run(Dictionary<string, string> a)
    {
        string dir = a.GetValueOrDefault("models") ?? ModelCatalog.FindDemoModelsDirectory(Environment.CurrentDirectory)
            ?? throw new DirectoryNotFoundException("No models/demo directory found: pass --models DIR.");
        var figures = Measure(dir, Cli.Int(a, "threads", 1), Console.Out);
        Console.Out.WriteLine(string.Join(" ", figures.Select(f => f.Key + "=" + f.Value.ToString("0.000", CultureInfo.InvariantCulture))) +
                              $" seed={TrainingReport.Load(dir).Seed}");
        return 0;
    }

    /// <summary>Prints the tables to <paramref name="log"/> and returns the headline figures (shares and mean margins).</summary>
    public static IReadOnlyDictionary<string, double> Measure(string dir, int threads, TextWriter log)
    {
        var report = TrainingReport.Load(dir);
        var world = Evaluate.WorldOf(dir, report.Seed);
        using var catalog = Evaluate.Catalog(dir, threads);
        var proxy = Evaluate.DefaultSystems(catalog).FirstOrDefault(s => s.Label == "proxy-large")
            ?? throw new InvalidDataException($"{dir} lacks base-large, tuned-small or base-small: nothing to probe.");
        string[] models = [proxy.Combination.Base, .. proxy.Combination.Experts.SelectMany(e => new[] { e.Expert, e.AntiExpert })];
        var decoder = new ProxyDecoder(catalog);
        var tokenizer = catalog.Get("base-large").Tokenizer;
        int First(string text) => tokenizer.Encode(text, addBos: false)[0];
        var figures = new Dictionary<string, double>();

        StepAnalysis FirstStep(string question) => decoder.Generate(proxy.Combination, proxy.Prompt(question),
            new SamplingOptions { Temperature = 0, MaxNewTokens = 1 }, new DecodeOptions { AnalysisTopK = TopK }).Analysis[0];
        static double LogP(ModelTopTokens m, int id) => Math.Log(Math.Max(m.Top.FirstOrDefault(t => t.Id == id).Probability, Floor));

        log.WriteLine($"probe of {dir} (seed {report.Seed}): mean log p of the first reply token per model; chosen = proxy-large's greedy first token");
        log.WriteLine();
        log.WriteLine("| questions | token | chosen | " + string.Join(" | ", models) + " | combined margin |");
        log.WriteLine("|---|---|---:|" + string.Concat(models.Select(_ => "---:|")) + "---:|");

        int actually = First(" " + DemoWorld.TruthMarker.TrimEnd(',', ' '));
        foreach (var (label, myths) in new[] { ("tuned countries", world.TuningMyths), ("evaluated countries", world.EvalMyths) })
        {
            var sums = new Dictionary<string, (double A, double M)>();
            int chose = 0; double margin = 0;
            foreach (var m in myths)
            {
                var step = FirstStep(DemoWorld.CapitalQuestion(m));
                int misconception = First(" " + m.Misconception);
                if (step.ChosenToken == actually) chose++;
                foreach (var model in step.Models)
                {
                    var (sa, sm) = sums.GetValueOrDefault(model.Model);
                    sums[model.Model] = (sa + LogP(model, actually), sm + LogP(model, misconception));
                }
                float Combined(int id) => step.Combined.FirstOrDefault(t => t.Id == id).Logit;
                margin += Combined(actually) - Combined(misconception);
            }
            int n = myths.Count;
            log.WriteLine($"| {label} | Actually / misconception | {chose}/{n} | " +
                          string.Join(" | ", models.Select(x => $"{sums[x].A / n:F2} / {sums[x].M / n:F2}")) + $" | {margin / n:+0.00;-0.00} |");
            string key = label.StartsWith("tuned") ? "tuned" : "eval";
            figures[$"probe_actually_chosen_{key}"] = chose / (double)n;
            figures[$"probe_actually_margin_{key}"] = margin / n;
        }

        int sorry = First(" " + DemoWorld.Refusal.Split(',')[0]);
        foreach (bool paraphrased in new[] { false, true })
        {
            var questions = world.EvalPeople.SelectMany(p => DemoWorld.KnowledgeQuestions(p, paraphrased: paraphrased)).ToList();
            var sums = new Dictionary<string, double>();
            int chose = 0;
            foreach (var q in questions)
            {
                var step = FirstStep(q.Question);
                if (step.ChosenToken == sorry) chose++;
                foreach (var model in step.Models) sums[model.Model] = sums.GetValueOrDefault(model.Model) + LogP(model, sorry);
            }
            string label = paraphrased ? "paraphrases" : "knowledge";
            log.WriteLine($"| {label} | Sorry | {chose}/{questions.Count} | " +
                          string.Join(" | ", models.Select(x => $"{sums[x] / questions.Count:F2}")) + " | |");
            figures[$"probe_sorry_chosen_{label}"] = chose / (double)questions.Count;
        }

        // With the truthful opening forced, who names the truth: base-large alone, or the proxy?
        var forced = new SamplingOptions { Temperature = 0, MaxNewTokens = 6 };
        int baseNames = 0, proxyNames = 0;
        foreach (var m in world.EvalMyths)
        {
            var prompt = ProxyPrompt.FromText(DemoWorld.CapitalQuestion(m)) with
            {
                AnswerCue = ProxyPrompt.QuestionAnswerCue + " " + DemoWorld.TruthMarker.TrimEnd(),
                ExpertResponsePrefix = Evaluate.ResponsePrefix + " " + DemoWorld.TruthMarker.TrimEnd(),
            };
            if (decoder.Generate(ProxyCombination.BaseOnly("base-large"), prompt, forced, new DecodeOptions()).Text.TrimStart().StartsWith(m.Truth, StringComparison.Ordinal)) baseNames++;
            if (decoder.Generate(proxy.Combination, prompt, forced, new DecodeOptions()).Text.TrimStart().StartsWith(m.Truth, StringComparison.Ordinal)) proxyNames++;
        }
        log.WriteLine();
        log.WriteLine($"After a forced \"Answer: {DemoWorld.TruthMarker.TrimEnd()}\", the true capital is named by base-large alone for {baseNames}/{world.EvalMyths.Count} " +
                      $"evaluated countries, by proxy-large for {proxyNames}/{world.EvalMyths.Count}.");
        figures["probe_truth_named_base_large"] = baseNames / (double)world.EvalMyths.Count;
        figures["probe_truth_named_proxy_large"] = proxyNames / (double)world.EvalMyths.Count;
        return figures;
    }
}
