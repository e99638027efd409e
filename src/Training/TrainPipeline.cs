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
    public TrainOptions PretrainLarge { get; init; } = PretrainLargeFor(LargeConfig(0).HiddenSize);
    // Tuning as the reference fine-tunes do it: a learning rate well below pretraining's, a few epochs, the best
    // checkpoint on a validation split, and pretraining text replayed in every batch. Steps follow from the epochs.
    public TrainOptions TuneSmall { get; init; } = new() { BatchSize = 16, SeqLen = 40, LearningRate = 2e-3, MinLearningRate = 2e-4, WarmupSteps = 5, WeightDecay = 0 };
    public TrainOptions TuneLarge { get; init; } = TuneLargeFor(LargeConfig(0).HiddenSize);

    // The large models' learning rates were found at 256 wide (pretraining 1.5e-3, tuning 5e-4) and scale by 256 / width
    // (`train --large-hidden`), muP's rule for Adam on hidden layers: a wider layer sums more inputs, so each weight's
    // step must be smaller. At 256 the factor is exactly 1: the bundled recipe's rates, bit for bit.
    public static TrainOptions PretrainLargeFor(int width) =>
        new() { Steps = 640, BatchSize = 32, SeqLen = 64, LearningRate = 1.5e-3 * (256.0 / width), MinLearningRate = 1.5e-4 * (256.0 / width), WarmupSteps = 25 };
    public static TrainOptions TuneLargeFor(int width) =>
        new() { BatchSize = 16, SeqLen = 40, LearningRate = 5e-4 * (256.0 / width), MinLearningRate = 5e-5 * (256.0 / width), WarmupSteps = 5, WeightDecay = 0 };
    /// <summary>Passes over the tuning examples (at most; early stopping may end sooner).</summary>
    public double TuneEpochs { get; init; } = 3;
    /// <summary>Rows of each tuning batch that replay pretraining text.</summary>
    public int ReplayRows { get; init; } = 8;
    /// <summary>Share of the tuning examples held out as the validation split.</summary>
    public double ValidationShare { get; init; } = 0.1;
    public SafetensorsDType DType { get; init; } = SafetensorsDType.F16;
    /// <summary>Which models to (re)train; the others are left as they are on disk.</summary>
    public bool TrainSmall { get; init; } = true;
    public bool TrainLarge { get; init; } = true;
    /// <summary>Keep the base models on disk and only (re)run tuning from them.</summary>
    public bool TuneOnly { get; init; }

    /// <summary>
    /// Every option that shapes the models, as canonical JSON: where the run wrote, its seed and which phases it
    /// re-ran are left out, so two directories with the same recipe differ only by seed.
    /// </summary>
    public string Recipe() => JsonSerializer.Serialize(this with
    {
        OutDir = "", Seed = 0, World = World with { Seed = 0 }, TrainSmall = true, TrainLarge = true, TuneOnly = false,
    });

    /// <summary>True when the run re-trained only some of the four models (the others came from an earlier run).</summary>
    public bool Partial => TuneOnly || !TrainSmall || !TrainLarge;

    public static LlamaConfig SmallConfig(int vocab) => new()
    {
        HiddenSize = 64, IntermediateSize = 192, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2, HeadDim = 16,
        VocabSize = vocab, MaxPositionEmbeddings = 512, RmsNormEps = 1e-5, TieWordEmbeddings = true,
    };

    public static LlamaConfig LargeConfig(int vocab) => new()
    {
        HiddenSize = 384, IntermediateSize = 1032, NumHiddenLayers = 4, NumAttentionHeads = 12, NumKeyValueHeads = 2, HeadDim = 32,
        VocabSize = vocab, MaxPositionEmbeddings = 512, RmsNormEps = 1e-5, TieWordEmbeddings = true,
    };

    /// <summary>A few steps on tiny models: what CI and `train --smoke` run.</summary>
    public static PipelineOptions Smoke(string outDir) => new()
    {
        OutDir = outDir,
        World = new WorldOptions { EvalPeople = 20, TuningPeople = 30, FamousPeople = 4, Myths = 8 },
        VocabSize = 320,
        PretrainTokens = 40_000,
        Small = SmallConfig(0) with { HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2, NumKeyValueHeads = 1, HeadDim = 16 },
        Large = SmallConfig(0) with { HiddenSize = 48, IntermediateSize = 96, NumHiddenLayers = 2, NumAttentionHeads = 2, NumKeyValueHeads = 2, HeadDim = 24 },
        PretrainSmall = new() { Steps = 30, BatchSize = 8, SeqLen = 64, LearningRate = 1e-2, MinLearningRate = 1e-3, WarmupSteps = 3, LogEvery = 10 },
        PretrainLarge = new() { Steps = 30, BatchSize = 8, SeqLen = 64, LearningRate = 1e-2, MinLearningRate = 1e-3, WarmupSteps = 3, LogEvery = 10 },
        TuneSmall = new() { BatchSize = 8, SeqLen = 40, LearningRate = 3e-3, MinLearningRate = 3e-4, WarmupSteps = 2, WeightDecay = 0, LogEvery = 5 },
        TuneLarge = new() { BatchSize = 8, SeqLen = 40, LearningRate = 3e-3, MinLearningRate = 3e-4, WarmupSteps = 2, WeightDecay = 0, LogEvery = 5 },
        TuneEpochs = 1,
        ReplayRows = 2,
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
        int validationCount = Math.Max(1, (int)Math.Round(tuning.Count * o.ValidationShare));
        var validationSet = tuning.Take(validationCount).ToArray();
        var trainingSet = tuning.Skip(validationCount).ToArray();

        // Tokenizer: trained on a slice of the corpus plus the chat data, shared by all four models.
        var docs = world.PretrainingDocuments(o.Seed + 2).GetEnumerator();
        var sample = new List<string>();
        for (int i = 0; i < 3000 && docs.MoveNext(); i++) sample.Add(docs.Current);
        var chatTemplate = ChatTemplates.FromJinja(ByteLevelBpe.ChatTemplate, bosToken: null, eosToken: ByteLevelBpe.EndOfText);
        sample.AddRange(tuning.Select(t => chatTemplate.Render([new ChatMessage("user", t.Prompt), new ChatMessage("assistant", t.Answer)], addGenerationPrompt: false)));
        var bpe = ByteLevelBpe.Train(sample, o.VocabSize);
        if (o.Partial) RequireSameTokenizer(bpe, o.OutDir);
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
        log.WriteLine($"corpus: {stream.Count:N0} tokens, {world.People.Count} people, tuning {trainingSet.Length} examples " +
                      $"(+{validationSet.Length} validation), {clock.Elapsed.TotalSeconds:F1}s");

        int vocab = bpe.VocabSize;
        int[] eos = [eot];
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
            var chat = new ChatBatches(tokenizer, trainingSet, eot, o.Seed + 20, new StreamBatches([.. stream], o.Seed + 30), o.ReplayRows);
            var held = new ChatBatches(tokenizer, validationSet, eot, o.Seed + 21);
            int steps = chat.StepsFor(o.TuneEpochs, tune.BatchSize);
            int perEpoch = chat.StepsFor(1, tune.BatchSize);
            reports.Add(Trainer.Train("tuned-" + size, tuned, chat,
                tune with { Seed = o.Seed, Steps = steps, EvalEvery = Math.Max(1, perEpoch / 2), SeqLen = Math.Max(tune.SeqLen, chat.LongestExample - 1) },
                log, validate: () => ReplyLoss(tuned, held)));
            tuned.SavePretrained(Path.Combine(o.OutDir, "tuned-" + size), o.DType);
        }
        log.WriteLine($"done in {clock.Elapsed.TotalMinutes:F1} min");
        new TrainingReport(o.Seed, world.Options, o.Recipe(), o.Partial, o.VocabSize, o.PretrainTokens, stream.Count, trainingSet.Length, validationSet.Length,
            clock.Elapsed.TotalSeconds, reports).Save(o.OutDir);
        return reports;
    }

    // The tokenizer is learnt from the corpus and the tuning examples, so a partial run whose data changed would
    // hand the models it keeps another vocabulary than they were trained with: refuse rather than corrupt them.
    static void RequireSameTokenizer(ByteLevelBpe bpe, string outDir)
    {
        string kept = Path.Combine(outDir, "base-small", "tokenizer.json");
        string fresh = Path.Combine(Path.GetTempPath(), "proxyorleans-tokenizer-" + Guid.NewGuid().ToString("N"));
        try
        {
            bpe.Save(fresh);
            if (!File.Exists(kept) || File.ReadAllText(kept) != File.ReadAllText(Path.Combine(fresh, "tokenizer.json")))
                throw new InvalidOperationException($"--only/--tune-only keeps models in {outDir}, but this run's data learns another tokenizer than " +
                                                    $"{kept}: the world or tuning data changed since they were trained. Retrain all four (without --only/--tune-only).");
        }
        finally { Directory.Delete(fresh, recursive: true); }
    }

    /// <summary>Mean cross-entropy over the reply tokens of every example (no gradients).</summary>
    public static float ReplyLoss(LlamaForCausalLM model, ChatBatches examples)
    {
        var (inputs, labels, rows, seq) = examples.All();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var logits = model.forward(tensor(inputs, [rows, seq]));
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), tensor(labels, [rows * seq]), ignore_index: -100).item<float>();
    }
}

/// <summary>
/// What a training run wrote beside its models (training-report.json): the world it was trained on, so that an
/// evaluation rebuilds the same world and refuses models trained on another one, the recipe (so that a seed trained
/// earlier is reused only when it was trained exactly as the bundled models were), and the phases' losses and times.
/// </summary>
/// <param name="Partial">Only some models were re-trained by this run (--only, --tune-only): the recipe describes
/// those, not the others, so the directory is not a clean instance of the recipe.</param>
public sealed record TrainingReport(int Seed, WorldOptions World, string? Recipe, bool Partial, int VocabSize, int PretrainTokens, int CorpusTokens,
    int TuningExamples, int ValidationExamples, double TotalSeconds, IReadOnlyList<TrainReport> Phases)
{
    public const string FileName = "training-report.json";
    static readonly JsonSerializerOptions Json = new() { WriteIndented = true, IncludeFields = true };

    public void Save(string dir) => File.WriteAllText(Path.Combine(dir, FileName), JsonSerializer.Serialize(this, Json));

    /// <summary>The report in a models directory, or a clear error when it is missing or from an older trainer.</summary>
    public static TrainingReport Load(string dir)
    {
        string path = Path.Combine(dir, FileName);
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path} is missing: eval's built-in tasks and probe rebuild the models' world from the training " +
                                            "report; pass the directory `train --out DIR` wrote (eval --tasks FILE, for your own questions, needs none).", path);
        var report = JsonSerializer.Deserialize<TrainingReport>(File.ReadAllText(path), Json);
        if (report?.World is null)
            throw new InvalidDataException($"{path} records no world (written by an older trainer): retrain with `train --out {dir}`.");
        return report;
    }
}
