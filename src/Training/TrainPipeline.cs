using System.Diagnostics;
using System.Text.Json;
using ProxyOrleans.Inference.Checkpoints;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Tokenization;
using ProxyOrleans.Training.Data;
using static TorchSharp.torch;

namespace ProxyOrleans.Training;

/// <summary>Everything `train` needs; the defaults reproduce the bundled models.</summary>
public sealed record PipelineOptions
{
    public string OutDir { get; init; } = "models/demo";
    public int Seed { get; init; } = 1234;
    public int Threads { get; init; } = 1; // results depend on the thread count; the bundled models were trained at 1
    public int VocabSize { get; init; } = 768;
    public int PretrainTokens { get; init; } = 1_200_000;
    public WorldOptions World { get; init; } = new();
    public LlamaConfig Small { get; init; } = SmallConfig(0);
    public LlamaConfig Large { get; init; } = LargeConfig(0);
    public TrainOptions PretrainSmall { get; init; } = new() { Steps = 520, BatchSize = 32, SeqLen = 64, LearningRate = 3e-3, MinLearningRate = 3e-4, WarmupSteps = 25 };
    public TrainOptions PretrainLarge { get; init; } = new() { Steps = 520, BatchSize = 32, SeqLen = 64, LearningRate = 3e-3, MinLearningRate = 3e-4, WarmupSteps = 25 };
    public TrainOptions TuneSmall { get; init; } = new() { Steps = 250, BatchSize = 32, SeqLen = 40, LearningRate = 2e-3, MinLearningRate = 2e-4, WarmupSteps = 10, WeightDecay = 0 };
    public TrainOptions TuneLarge { get; init; } = new() { Steps = 150, BatchSize = 32, SeqLen = 40, LearningRate = 1e-3, MinLearningRate = 1e-4, WarmupSteps = 10, WeightDecay = 0 };
    public SafetensorsDType DType { get; init; } = SafetensorsDType.F16;
    /// <summary>Which models to (re)train; the others are left as they are on disk.</summary>
    public bool TrainSmall { get; init; } = true;
    public bool TrainLarge { get; init; } = true;
    /// <summary>Keep the base models on disk and only (re)run tuning from them.</summary>
    public bool TuneOnly { get; init; }

    public static LlamaConfig SmallConfig(int vocab) => new()
    {
        HiddenSize = 64, IntermediateSize = 192, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2, HeadDim = 16,
        VocabSize = vocab, MaxPositionEmbeddings = 512, RmsNormEps = 1e-5, TieWordEmbeddings = true,
    };

    public static LlamaConfig LargeConfig(int vocab) => new()
    {
        HiddenSize = 192, IntermediateSize = 512, NumHiddenLayers = 4, NumAttentionHeads = 6, NumKeyValueHeads = 2, HeadDim = 32,
        VocabSize = vocab, MaxPositionEmbeddings = 512, RmsNormEps = 1e-5, TieWordEmbeddings = true,
    };

    /// <summary>A few steps on tiny models: what CI and `train --smoke` run.</summary>
    public static PipelineOptions Smoke(string outDir) => new()
    {
        OutDir = outDir,
        World = new WorldOptions { People = 40 },
        VocabSize = 320,
        PretrainTokens = 40_000,
        Small = SmallConfig(0) with { HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2, NumKeyValueHeads = 1 },
        Large = SmallConfig(0) with { HiddenSize = 48, IntermediateSize = 96, NumHiddenLayers = 2, NumAttentionHeads = 2, NumKeyValueHeads = 2, HeadDim = 24 },
        PretrainSmall = new() { Steps = 30, BatchSize = 8, SeqLen = 64, LearningRate = 1e-2, MinLearningRate = 1e-3, WarmupSteps = 3, LogEvery = 10 },
        PretrainLarge = new() { Steps = 30, BatchSize = 8, SeqLen = 64, LearningRate = 1e-2, MinLearningRate = 1e-3, WarmupSteps = 3, LogEvery = 10 },
        TuneSmall = new() { Steps = 10, BatchSize = 8, SeqLen = 40, LearningRate = 3e-3, MinLearningRate = 3e-4, WarmupSteps = 2, WeightDecay = 0, LogEvery = 5 },
        TuneLarge = new() { Steps = 10, BatchSize = 8, SeqLen = 40, LearningRate = 3e-3, MinLearningRate = 3e-4, WarmupSteps = 2, WeightDecay = 0, LogEvery = 5 },
        DType = SafetensorsDType.F32,
    };
}

/// <summary>
/// The one command that reproduces the bundled family: world -> corpus -> tokenizer -> pretrain base-small and
/// base-large on the same tokens -> tune each on the same chat data -> four HF model directories.
/// </summary>
public static class TrainPipeline
{
    public static readonly string[] ModelNames = ["base-small", "base-large", "tuned-small", "tuned-large"];

    public static List<TrainReport> Run(PipelineOptions o, TextWriter? log = null)
    {
        log ??= Console.Out;
        set_num_threads(o.Threads);
        var clock = Stopwatch.StartNew();
        var world = new DemoWorld(o.World with { Seed = o.Seed });
        var tuning = world.TuningExamples(o.Seed + 1);

        // Tokenizer: trained on a slice of the corpus plus the chat data, shared by all four models.
        var docs = world.PretrainingDocuments(o.Seed + 2).GetEnumerator();
        var sample = new List<string>();
        for (int i = 0; i < 3000 && docs.MoveNext(); i++) sample.Add(docs.Current);
        var chatml = new ChatMlChatTemplate();
        sample.AddRange(tuning.Select(t => ChatBatches.RenderPrompt(chatml, t.Question) + t.Answer + ByteLevelBpe.ImEnd + "\n"));
        var bpe = ByteLevelBpe.Train(sample, o.VocabSize);
        // All four models share these files; training encodes through the same loader that serving uses.
        foreach (var name in ModelNames) bpe.Save(Path.Combine(o.OutDir, name));
        var tokenizer = TokenizerLoader.Load(Path.Combine(o.OutDir, ModelNames[0]));
        log.WriteLine($"tokenizer: {bpe.VocabSize} tokens ({bpe.Merges.Count} merges) in {clock.Elapsed.TotalSeconds:F1}s");

        // Pretraining stream: documents separated by <|endoftext|>, the same tokens for both sizes.
        int eot = bpe.Id(ByteLevelBpe.EndOfText);
        var stream = new List<int>(o.PretrainTokens + 256);
        var corpus = world.PretrainingDocuments(o.Seed + 3).GetEnumerator();
        while (stream.Count < o.PretrainTokens && corpus.MoveNext())
        {
            stream.AddRange(tokenizer.Encode(corpus.Current, addBos: false));
            stream.Add(eot);
        }
        log.WriteLine($"corpus: {stream.Count:N0} tokens, {world.People.Count} people, tuning {tuning.Count} examples, {clock.Elapsed.TotalSeconds:F1}s");

        int vocab = bpe.VocabSize;
        int[] eos = [bpe.Id(ByteLevelBpe.ImEnd), eot];
        var reports = new List<TrainReport>();
        foreach (var (size, config, pre, tune, enabled) in new[]
                 {
                     ("small", o.Small, o.PretrainSmall, o.TuneSmall, o.TrainSmall),
                     ("large", o.Large, o.PretrainLarge, o.TuneLarge, o.TrainLarge),
                 })
        {
            if (!enabled) continue;
            var c = config with { VocabSize = vocab, EosTokenIds = eos, BosTokenId = null };
            manual_seed(o.Seed);
            string baseDir = Path.Combine(o.OutDir, "base-" + size);
            if (!o.TuneOnly)
            {
                using var model = new LlamaForCausalLM(c);
                reports.Add(Trainer.Train("base-" + size, model, new StreamBatches(stream.ToArray(), o.Seed + 10), pre with { Seed = o.Seed }, log));
                model.SavePretrained(baseDir, o.DType);
            }
            // Tuning continues from the saved base weights as stored (F16 round trip), so that the anti-expert
            // (base) and the expert (tuned) differ only by what tuning taught.
            using var tuned = LlamaForCausalLM.FromPretrained(baseDir);
            var chat = new ChatBatches(tokenizer, tuning, eot, o.Seed + 20);
            reports.Add(Trainer.Train("tuned-" + size, tuned, chat, tune with { Seed = o.Seed, SeqLen = Math.Max(tune.SeqLen, chat.LongestExample - 1) }, log));
            tuned.SavePretrained(Path.Combine(o.OutDir, "tuned-" + size), o.DType);
        }
        log.WriteLine($"done in {clock.Elapsed.TotalMinutes:F1} min");
        File.WriteAllText(Path.Combine(o.OutDir, "training-report.json"), JsonSerializer.Serialize(new
        {
            o.Seed, o.VocabSize, o.PretrainTokens, people = world.People.Count, tuningExamples = tuning.Count,
            corpusTokens = stream.Count, totalSeconds = clock.Elapsed.TotalSeconds, phases = reports,
        }, new JsonSerializerOptions { WriteIndented = true }));
        return reports;
    }
}
