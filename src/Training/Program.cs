using ProxyOrleans.Inference.Runtime;
using ProxyOrleans.Training;

TorchRuntime.EnsureLoaded();
return Cli.Run(args);

namespace ProxyOrleans.Training
{
    /// <summary>`train`, `eval`, `study` and `hfcompare` (see <see cref="Usage"/>). Exit codes: 0 done, 1 no or unknown command, 2 bad input.</summary>
    public static class Cli
    {
        public static int Run(string[] args)
        {
            if (args.Length == 0 || args[0] is "-h" or "--help")
            {
                Console.WriteLine(Usage);
                return args.Length == 0 ? 1 : 0;
            }
            if (args.Skip(1).Any(a => a is "-h" or "--help"))
            {
                Console.WriteLine(Usage); // help only: never train or overwrite anything
                return 0;
            }
            try
            {
                var opts = args[0] == "hfcompare" ? new() : Parse(args.Skip(1).ToArray(), args[0]);
                switch (args[0])
                {
                    case "train": return Train(opts);
                    case "eval": return Evaluate.Run(opts);
                    case "hfcompare":
                        if (args.Length < 2 || args[1].StartsWith("--")) throw new ArgumentException("hfcompare needs the JSON file written by scripts/hf_crosscheck.py.");
                        return HfCompare.Run(args[1], Parse(args.Skip(2).ToArray(), "hfcompare"));
                    default:
                        Console.Error.WriteLine($"Unknown command '{args[0]}'.\n{Usage}");
                        return 1;
                }
            }
            catch (Exception e) when (e is ArgumentException or FormatException or InvalidDataException or FileNotFoundException or DirectoryNotFoundException)
            {
                Console.Error.WriteLine("error: " + e.Message);
                return 2;
            }
        }

        public const string Usage = """
            usage:
              train [--out models/demo] [--seed 1234] [--threads 1] [--smoke] [--only small|large] [--tune-only]
                    [--small-steps N] [--large-steps N] [--tune-epochs X] [--tune-lr SMALL,LARGE] [--replay-rows N]
                    [--small-hidden N (head_dim N/4, ffn 3N)]
                    [--tokens N] [--eval-people N]
              eval  [--models models/demo] [--tasks tasks.jsonl] [--alphas 0,0.5,1,1.5,2] [--docs DIR] [--no-docs]
                    [--threads 1] [--combination base=base-large,expert=tuned-small,anti=base-small,alpha=1]
                    [--no-sweep] [--max-new-tokens 12] [--seeds 1234,1,2] [--work /tmp/proxyorleans-seeds]
                    built-in tasks (no --tasks): the world is read from the models' training-report.json; writes
                    docs/evaluation.md unless --no-docs. With --tasks: prints only, unless --docs DIR is given.
                    --seeds: training seeds to report; the bundled models are the seed in their report, every other
                    seed is trained (once, kept in --work) with the same recipe.
              hfcompare FILE [--models models/demo]   (FILE from scripts/hf_crosscheck.py, run with transformers)
            exit codes: 0 done, 1 no or unknown command, 2 bad input (the message says what to fix)
            """;

        static readonly Dictionary<string, string[]> Known = new()
        {
            ["train"] = ["out", "seed", "threads", "smoke", "only", "tune-only", "small-steps", "large-steps", "tune-epochs", "tune-lr", "replay-rows", "tokens", "eval-people", "small-hidden"],
            ["eval"] = ["models", "tasks", "alphas", "docs", "no-docs", "threads", "combination", "no-sweep", "max-new-tokens", "seeds", "work"],
            ["hfcompare"] = ["models"],
        };

        internal static Dictionary<string, string> Parse(string[] args, string command)
        {
            var d = new Dictionary<string, string>();
            var known = Known.GetValueOrDefault(command, []);
            for (int i = 0; i < args.Length; i++)
            {
                if (!args[i].StartsWith("--")) throw new ArgumentException($"Unexpected argument '{args[i]}'. Options look like --name value.");
                string key = args[i][2..];
                if (!known.Contains(key))
                    throw new ArgumentException($"Unknown option --{key} for '{command}'. Its options: {string.Join(", ", known.Select(k => "--" + k))}.");
                if (i + 1 < args.Length && !args[i + 1].StartsWith("--")) d[key] = args[++i];
                else d[key] = "true";
            }
            return d;
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
                World = o.World with { EvalPeople = Int(a, "eval-people", o.World.EvalPeople) },
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
