using System.CommandLine;
using ProxyOrleans.Inference.Runtime;
using ProxyOrleans.Training;

TorchRuntime.EnsureLoaded();
return Cli.Run(args);

namespace ProxyOrleans.Training
{
    /// <summary>
    /// `train`, `eval` and `hfcompare` on System.CommandLine, as every executable of the project: `--help` prints and does
    /// nothing else, unknown options are errors. Exit codes: 0 done (and --help), 1 the work failed, 2 bad command line or input.
    /// </summary>
    public static class Cli
    {
        // (name, description, flag): each command's options; values reach the commands as a name → value map.
        static readonly (string Name, string Description, bool Flag)[] TrainOptions =
        [
            ("out", "Output directory of the four models (models/demo).", false),
            ("seed", "World, data order and initialisation (1234: the bundled models).", false),
            ("threads", "Torch threads (1: what the bundled models were trained with; results depend on it).", false),
            ("smoke", "Tiny models, a few steps (what CI runs).", true),
            ("only", "Train only one size: small or large (the other is left on disk).", false),
            ("tune-only", "Keep the bases on disk and only redo tuning.", true),
            ("small-steps", "Pretraining steps of base-small.", false),
            ("large-steps", "Pretraining steps of base-large.", false),
            ("tune-epochs", "Passes over the tuning examples, at most (early stopping may end sooner).", false),
            ("tune-lr", "Peak tuning learning rates SMALL,LARGE.", false),
            ("replay-rows", "Rows of each tuning batch that replay pretraining text.", false),
            ("small-hidden", "Width of the small models (head_dim N/4, ffn 3N).", false),
            ("large-hidden", "Width of the large models (heads of 32, ffn 2.6875N; learning rates scaled by 256/N).", false),
            ("tokens", "Pretraining corpus size in tokens.", false),
            ("eval-people", "People whose facts pretraining states and evaluation asks.", false),
            ("myths", "Countries with a misconception (half tuned, half evaluated).", false),
            ("famous-asked-once", "Ask each famous fact once in tuning (default: twice, in two wordings).", true),
            ("extra-capital-wordings", "Also ask each tuning country's capital in N more wordings (0-2; default 2).", false),
            ("tuning-country-weight", "Pretraining mentions each tuning country N times as often as an evaluated one (default 3).", false),
        ];

        static readonly (string Name, string Description, bool Flag)[] EvalOptions =
        [
            ("models", "The models directory (models/demo found above the working directory).", false),
            ("tasks", "Your questions (JSONL: prompt, reference, rule = exact|contains|regex, task); printed only unless --docs.", false),
            ("seeds", "Training seeds to report (default: the bundled seed, 1, 2); seeds not bundled are trained once into --work.", false),
            ("work", "Where seeds that are not bundled are trained and kept (/tmp/proxyorleans-seeds).", false),
            ("alphas", "The alpha sweep (0,0.25,0.5,0.75,1,1.5,2).", false),
            ("docs", "Write evaluation.md and its plots here (built-in tasks: docs unless --no-docs).", false),
            ("no-docs", "Write nothing (built-in tasks).", true),
            ("no-sweep", "Skip the alpha sweep.", true),
            ("replies", "Also write every reply as JSON lines (seed, system, task, prompt, reference, reply, content) to this file.", false),
            ("threads", "Torch threads (1).", false),
            ("combination", "An extra system: base=…,expert=…,anti=…,weight=…,alpha=…[,chat=true].", false),
            ("max-new-tokens", "Tokens per reply at most (12).", false),
        ];

        static readonly (string Name, string Description, bool Flag)[] ProbeOptions =
        [
            ("models", "The models directory (models/demo found above the working directory).", false),
            ("threads", "Torch threads (1).", false),
        ];

        public static int Run(string[] args)
        {
            var root = new RootCommand("Trains the bundled demo family and evaluates proxy-tuning on it.\n" +
                                       "Exit codes: 0 done (and --help); 1 the work failed; 2 bad command line or input (the message says what to fix).");
            root.Subcommands.Add(Command("train", "Reproduces the four bundled models (seeded, deterministic for a seed and thread count).", TrainOptions, Train));
            root.Subcommands.Add(Command("eval", "The paper's experiment on the demo family over several training seeds; writes docs/evaluation.md.", EvalOptions, Evaluate.Run));
            root.Subcommands.Add(Command("probe", "Where proxy-large decides: per model, the first reply token's probabilities on the truthful, knowledge and paraphrase questions.", ProbeOptions, Evaluation.Probe.Run));
            var file = new Argument<string>("file") { Description = "The JSON file written by scripts/hf_crosscheck.py (run where transformers is installed)." };
            var hfModels = new Option<string?>("--models") { Description = "The models directory (models/demo)." };
            var hf = new Command("hfcompare", "Compares our tokenizer, model and proxy answers with Hugging Face transformers' output.") { file, hfModels };
            hf.SetAction(p => Guarded(() => HfCompare.Run(p.GetValue(file)!,
                p.GetValue(hfModels) is { } m ? new Dictionary<string, string> { ["models"] = m } : [])));
            root.Subcommands.Add(hf);

            var parsed = root.Parse(args);
            if (parsed.Errors.Count > 0 && parsed.Action is not System.CommandLine.Help.HelpAction)
            {
                foreach (var e in parsed.Errors) Console.Error.WriteLine("error: " + e.Message);
                Console.Error.WriteLine("Run with --help for the commands and their options.");
                return 2;
            }
            return parsed.Invoke();
        }

        static Command Command(string name, string description, (string Name, string Description, bool Flag)[] options, Func<Dictionary<string, string>, int> run)
        {
            var command = new Command(name, description);
            var made = options.Select(o => (o.Name, Option: o.Flag ? (Option)new Option<bool>("--" + o.Name) { Description = o.Description }
                                                                 : new Option<string>("--" + o.Name) { Description = o.Description })).ToList();
            foreach (var (_, option) in made) command.Options.Add(option);
            command.SetAction(parse =>
            {
                var values = new Dictionary<string, string>();
                foreach (var (key, option) in made)
                    if (parse.GetResult(option) is { Implicit: false } result)
                        values[key] = option is Option<bool> flag ? (parse.GetValue(flag) ? "true" : "false") : parse.GetValue((Option<string>)option)!;
                foreach (var flag in values.Where(kv => kv.Value == "false").Select(kv => kv.Key).ToList()) values.Remove(flag);
                return Guarded(() => run(values));
            });
            return command;
        }

        static int Guarded(Func<int> run)
        {
            try { return run(); }
            catch (Exception e) when (e is ArgumentException or FormatException or InvalidDataException or FileNotFoundException or DirectoryNotFoundException)
            {
                Console.Error.WriteLine("error: " + e.Message);
                return 2;
            }
        }

        internal static int Int(Dictionary<string, string> o, string key, int fallback) =>
            o.TryGetValue(key, out var v) ? (int.TryParse(v, out int r) ? r : throw new FormatException($"--{key} expects an integer, got '{v}'.")) : fallback;

        static double Double(string v, string key) =>
            double.TryParse(v, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double d) && double.IsFinite(d) && d > 0
                ? d : throw new FormatException($"--{key} expects a positive number, got '{v}'.");

        static int Train(Dictionary<string, string> a)
        {
            string outDir = a.GetValueOrDefault("out", "models/demo");
            var o = a.ContainsKey("smoke") ? PipelineOptions.Smoke(outDir) : new PipelineOptions { OutDir = outDir };
            o = o with
            {
                Seed = Int(a, "seed", o.Seed),
                Threads = Int(a, "threads", o.Threads),
                PretrainTokens = Int(a, "tokens", o.PretrainTokens),
                World = o.World with
                {
                    EvalPeople = Int(a, "eval-people", o.World.EvalPeople), Myths = Int(a, "myths", o.World.Myths),
                    FamousAskedTwice = !a.ContainsKey("famous-asked-once") && o.World.FamousAskedTwice,
                    ExtraCapitalWordings = Int(a, "extra-capital-wordings", o.World.ExtraCapitalWordings),
                    TuningCountryWeight = Int(a, "tuning-country-weight", o.World.TuningCountryWeight),
                },
                PretrainSmall = o.PretrainSmall with { Steps = Int(a, "small-steps", o.PretrainSmall.Steps) },
                PretrainLarge = o.PretrainLarge with { Steps = Int(a, "large-steps", o.PretrainLarge.Steps) },
                TuneEpochs = a.TryGetValue("tune-epochs", out var ep) ? Double(ep, "tune-epochs") : o.TuneEpochs,
                ReplayRows = Int(a, "replay-rows", o.ReplayRows),
                TrainSmall = a.GetValueOrDefault("only", "small") == "small" || !a.ContainsKey("only"),
                TrainLarge = a.GetValueOrDefault("only", "large") == "large" || !a.ContainsKey("only"),
                TuneOnly = a.ContainsKey("tune-only"),
            };
            if (a.ContainsKey("small-hidden"))
            {
                int hidden = Int(a, "small-hidden", o.Small.HiddenSize);
                if (hidden < 8 || hidden % 8 != 0) throw new FormatException($"--small-hidden must be a positive multiple of 8, got {hidden}.");
                o = o with { Small = o.Small with { HiddenSize = hidden, HeadDim = hidden / 4, IntermediateSize = 3 * hidden } };
            }
            if (a.ContainsKey("large-hidden"))
            {
                int hidden = Int(a, "large-hidden", o.Large.HiddenSize);
                if (hidden < 64 || hidden % 64 != 0) throw new FormatException($"--large-hidden must be a positive multiple of 64, got {hidden}.");
                o = o with
                {
                    Large = o.Large with { HiddenSize = hidden, NumAttentionHeads = hidden / 32, HeadDim = 32, IntermediateSize = hidden * 43 / 16 },
                    PretrainLarge = PipelineOptions.PretrainLargeFor(hidden) with { Steps = o.PretrainLarge.Steps },
                    TuneLarge = PipelineOptions.TuneLargeFor(hidden),
                };
            }
            if (a.TryGetValue("tune-lr", out var lrs))
            {
                var parts = lrs.Split(',');
                if (parts.Length != 2) throw new FormatException($"--tune-lr expects SMALL,LARGE peak learning rates, got '{lrs}'.");
                double small = Double(parts[0], "tune-lr"), large = Double(parts[1], "tune-lr");
                o = o with
                {
                    TuneSmall = o.TuneSmall with { LearningRate = small, MinLearningRate = small / 10 },
                    TuneLarge = o.TuneLarge with { LearningRate = large, MinLearningRate = large / 10 },
                };
            }
            TrainPipeline.Run(o);
            return 0;
        }
    }
}
