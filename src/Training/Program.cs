using ProxyOrleans.Inference.Runtime;
using ProxyOrleans.Training;

TorchRuntime.EnsureLoaded();
return Cli.Run(args);

namespace ProxyOrleans.Training
{
    /// <summary>
    /// dotnet run --project src/Training -c Release -- train [--out models/demo] [--seed 1234] [--threads 1] [--smoke]
    ///   [--only small|large] [--small-steps N] [--large-steps N] [--tune-steps N (both sizes)] [--tokens N] [--people N]
    /// dotnet run --project src/Training -c Release -- eval [--models models/demo] [--tasks file.jsonl] ...
    /// </summary>
    public static class Cli
    {
        public static int Run(string[] args)
        {
            if (args.Length == 0 || args[0] is "-h" or "--help")
            {
                Console.WriteLine(Usage);
                return args.Length == 0 ? 1 : 0;
            }
            try
            {
                var opts = args[0] == "hfcompare" ? new() : Parse(args.Skip(1).ToArray());
                switch (args[0])
                {
                    case "train": return Train(opts);
                    case "eval": return Evaluate.Run(opts);
                    case "hfcompare":
                        if (args.Length < 2 || args[1].StartsWith("--")) throw new ArgumentException("hfcompare needs the JSON file written by scripts/hf_crosscheck.py.");
                        return HfCompare.Run(args[1], Parse(args.Skip(2).ToArray()));
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
                    [--small-steps N] [--large-steps N] [--tune-steps N (both sizes)] [--tokens N] [--people N]
              eval  [--models models/demo] [--tasks tasks.jsonl] [--alphas 0.25,0.5,1,1.5,2] [--per-task 100]
                    [--docs docs] [--threads 1] [--combination base=base-large,expert=tuned-small,anti=base-small,alpha=1]
                    [--no-sweep] [--no-docs] [--verbose] [--max-new-tokens 16] [--seed 1234]
              hfcompare FILE [--models models/demo]   (FILE from scripts/hf_crosscheck.py, run with transformers)
            """;

        internal static Dictionary<string, string> Parse(string[] args)
        {
            var d = new Dictionary<string, string>();
            for (int i = 0; i < args.Length; i++)
            {
                if (!args[i].StartsWith("--")) throw new ArgumentException($"Unexpected argument '{args[i]}'. Options look like --name value.");
                string key = args[i][2..];
                if (i + 1 < args.Length && !args[i + 1].StartsWith("--")) d[key] = args[++i];
                else d[key] = "true";
            }
            return d;
        }

        internal static int Int(Dictionary<string, string> o, string key, int fallback) =>
            o.TryGetValue(key, out var v) ? (int.TryParse(v, out int r) ? r : throw new FormatException($"--{key} expects an integer, got '{v}'.")) : fallback;

        static int Train(Dictionary<string, string> a)
        {
            string outDir = a.GetValueOrDefault("out", "models/demo");
            var o = a.ContainsKey("smoke") ? PipelineOptions.Smoke(outDir) : new PipelineOptions { OutDir = outDir };
            o = o with
            {
                Seed = Int(a, "seed", o.Seed),
                Threads = Int(a, "threads", o.Threads),
                PretrainTokens = Int(a, "tokens", o.PretrainTokens),
                World = o.World with { People = Int(a, "people", o.World.People) },
                PretrainSmall = o.PretrainSmall with { Steps = Int(a, "small-steps", o.PretrainSmall.Steps) },
                PretrainLarge = o.PretrainLarge with { Steps = Int(a, "large-steps", o.PretrainLarge.Steps) },
                TuneSmall = o.TuneSmall with { Steps = Int(a, "tune-steps", o.TuneSmall.Steps) },
                TuneLarge = o.TuneLarge with { Steps = Int(a, "tune-steps", o.TuneLarge.Steps) },
                TrainSmall = a.GetValueOrDefault("only", "small") == "small" || !a.ContainsKey("only"),
                TrainLarge = a.GetValueOrDefault("only", "large") == "large" || !a.ContainsKey("only"),
                TuneOnly = a.ContainsKey("tune-only"),
            };
            TrainPipeline.Run(o);
            return 0;
        }
    }
}
