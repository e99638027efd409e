using System.Runtime.CompilerServices;
using ProxyOrleans.Inference.Checkpoints;
using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Runtime;
using ProxyOrleans.Inference.Tokenization;
using ProxyOrleans.Training;
using ProxyOrleans.Training.Data;
using ProxyOrleans.Training.Evaluation;
using TorchSharp;
using Xunit;

namespace ProxyOrleans.Training.Tests;

internal static class Init
{
    [ModuleInitializer]
    internal static void Load() => TorchRuntime.EnsureLoaded();

    public static string NewDir(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), "proxyorleans-training-tests", name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }
}

public class DemoWorldTests
{
    [Fact]
    public void Same_seed_gives_the_same_world_and_corpus()
    {
        var a = new DemoWorld(new WorldOptions { Seed = 7, People = 50 });
        var b = new DemoWorld(new WorldOptions { Seed = 7, People = 50 });
        var c = new DemoWorld(new WorldOptions { Seed = 8, People = 50 });
        Assert.Equal(a.People, b.People);
        Assert.NotEqual(a.People, c.People);
        Assert.Equal(a.PretrainingDocuments(1).Take(200), b.PretrainingDocuments(1).Take(200));
        Assert.Equal(a.TuningExamples(3), b.TuningExamples(3));
    }

    [Fact]
    public void Batches_depend_only_on_seed_and_step_in_every_process()
    {
        // Golden offsets: a per-process-randomised hash (HashCode.Combine) once made every training run differ.
        var source = new StreamBatches(Enumerable.Range(0, 10_000).ToArray(), seed: 7);
        long[] inputs = new long[4 * 8], labels = new long[4 * 8];
        source.Fill(step: 3, batch: 4, seq: 8, inputs, labels);
        long[] firstOfEachRow = [inputs[0], inputs[8], inputs[16], inputs[24]];
        Assert.Equal([7360L, 6737L, 5780L, 4694L], firstOfEachRow);
    }

    [Fact]
    public void Evaluation_questions_are_held_out_from_tuning_but_present_in_pretraining()
    {
        var w = new DemoWorld(new WorldOptions { Seed = 11, People = 60 });
        var tuningQuestions = w.TuningExamples(1).Select(t => t.Question).ToHashSet();
        var eval = w.EvalExamples(40);
        Assert.Contains(eval, e => e.Task == "knowledge");
        Assert.Contains(eval, e => e.Task == "arithmetic");
        Assert.Contains(eval, e => e.Task == "refusal");
        foreach (var e in eval) Assert.DoesNotContain(e.Question, tuningQuestions);
        // No eval person is asked about in tuning at all.
        foreach (var p in w.EvalPeople) Assert.DoesNotContain(tuningQuestions, q => q.Contains(p.Name));
        Assert.Empty(w.TuningSums.Intersect(w.EvalSums));
        // Every eval fact appears in pretraining text, as plain text: never as a chat turn, never as the tuned
        // one-line reply (notes that say "Answer: X" end with a full stop), never refused.
        var corpus = string.Join("\n", w.PretrainingDocuments(2).Take(20000));
        foreach (var p in w.EvalPeople) Assert.Contains($"{p.Name} lives in {p.City}", corpus);
        Assert.DoesNotContain("<|im_start|>", corpus);
        Assert.DoesNotContain(DemoWorld.Refusal, corpus);
        foreach (var line in corpus.Split('\n').Where(l => l.StartsWith(DemoWorld.AnswerPrefix)))
            Assert.EndsWith(".", line);
    }
}

public class TokenizerTrainingTests
{
    [Fact]
    public void Trained_tokenizer_loads_through_the_serving_loader_with_chatml_and_single_digits()
    {
        var w = new DemoWorld(new WorldOptions { Seed = 3, People = 30 });
        var bpe = ByteLevelBpe.Train(w.PretrainingDocuments(1).Take(500), 400);
        Assert.True(bpe.VocabSize <= 400);
        string dir = Init.NewDir("tok");
        bpe.Save(dir);
        var tok = TokenizerLoader.Load(dir);
        Assert.Equal(bpe.VocabSize, tok.VocabSize);
        Assert.Equal(bpe.Id(ByteLevelBpe.ImEnd), tok.EosTokenId);
        Assert.Equal(ChatTemplates.ChatMlJinja, Assert.IsType<JinjaChatTemplate>(tok.ChatTemplate).Source); // the saved template, rendered as Jinja

        string text = $"{w.People[0].Name} lives in {w.People[0].City}. 12 + 345 = 357.";
        int[] ids = tok.Encode(text, addBos: false);
        Assert.Equal(text, tok.Decode(ids));
        Assert.True(ids.Length < text.Length * 0.7, $"merges should shorten common words ({ids.Length} tokens for {text.Length} chars)");
        // Digits are never merged: every digit is its own token.
        foreach (int id in tok.Encode("1234567890", addBos: false)) Assert.Single(tok.Decode([id]));

        int[] chat = tok.Encode(ChatBatches.RenderPrompt(tok.ChatTemplate!, "Hi"), addBos: false, parseSpecialTokens: true);
        Assert.Equal(bpe.Id(ByteLevelBpe.ImStart), chat[0]);
    }
}

public class BatchTests
{
    [Fact]
    public void Chat_batches_put_loss_only_on_the_reply()
    {
        var w = new DemoWorld(new WorldOptions { Seed = 3, People = 20 });
        var bpe = ByteLevelBpe.Train(w.PretrainingDocuments(1).Take(300).Append("Answer: Sorry, I cannot answer that."), 400);
        string dir = Init.NewDir("chat");
        bpe.Save(dir);
        var tok = TokenizerLoader.Load(dir);
        var pair = new QaPair("knowledge", "Where does X live?", "Answer: Paris");
        int pad = bpe.Id(ByteLevelBpe.EndOfText);
        var batches = new ChatBatches(tok, [pair], pad, seed: 1);
        int seq = batches.LongestExample + 3;
        var inputs = new long[seq]; var labels = new long[seq];
        batches.Fill(0, 1, seq, inputs, labels);

        int[] reply = tok.Encode("Answer: Paris<|im_end|>\n", addBos: false, parseSpecialTokens: true);
        var trained = labels.Where(l => l != -100).Select(l => (int)l).ToArray();
        Assert.Equal(reply, trained);
        Assert.Equal(pad, inputs[^1]);
        // Labels are the next input token where they are set.
        for (int t = 0; t + 1 < seq; t++)
            if (labels[t] != -100) Assert.Equal(inputs[t + 1], labels[t]);
    }

    [Fact]
    public void Cosine_schedule_warms_up_then_decays_to_the_minimum()
    {
        var o = new TrainOptions { Steps = 100, WarmupSteps = 10, LearningRate = 1e-3, MinLearningRate = 1e-4 };
        Assert.True(Trainer.LearningRate(0, o) < Trainer.LearningRate(9, o));
        Assert.Equal(1e-3, Trainer.LearningRate(10, o), 9);
        Assert.True(Trainer.LearningRate(50, o) < 1e-3 && Trainer.LearningRate(50, o) > 1e-4);
        Assert.Equal(1e-4, Trainer.LearningRate(100, o), 9);
    }
}

public class SmokeTrainingTests
{
    static LlamaConfig Tiny(int vocab) => PipelineOptions.Smoke("unused").Small with { VocabSize = vocab };

    [Fact]
    public void A_few_steps_lower_the_loss_and_the_checkpoint_reloads_with_identical_logits()
    {
        var w = new DemoWorld(new WorldOptions { Seed = 5, People = 20 });
        var bpe = ByteLevelBpe.Train(w.PretrainingDocuments(1).Take(300), 320);
        string dir = Init.NewDir("smoke");
        bpe.Save(dir);
        var tok = TokenizerLoader.Load(dir);
        var stream = w.PretrainingDocuments(2).Take(400).SelectMany(d => tok.Encode(d, addBos: false)).ToArray();

        torch.manual_seed(1);
        using var model = new LlamaForCausalLM(Tiny(bpe.VocabSize));
        var losses = new List<float>();
        var report = Trainer.Train("smoke", model, new StreamBatches(stream, 1),
            new TrainOptions { Steps = 25, BatchSize = 8, SeqLen = 32, LearningRate = 1e-2, MinLearningRate = 1e-3, WarmupSteps = 3, LogEvery = 100 },
            TextWriter.Null, (_, l) => losses.Add(l));
        Assert.Equal(25, losses.Count);
        Assert.True(losses.TakeLast(5).Average() < losses.Take(3).Average() - 1.0,
            $"loss should fall by more than 1 nat: first {losses[0]:F3}, last {losses[^1]:F3}");

        model.SavePretrained(dir, SafetensorsDType.F32);
        using var reloaded = LlamaForCausalLM.FromPretrained(dir);
        using var x = torch.tensor(stream.Take(24).Select(i => (long)i).ToArray(), [1, 24]);
        using var a = model.forward(x);
        using var b = reloaded.forward(x);
        Assert.Equal(0f, (a - b).abs().max().item<float>());

        // The serving model (KV cache, fused weights) gives the same next-token logits.
        using var served = LlamaInferenceModel.Load(dir);
        using var session = served.CreateSession(32);
        var last = new float[served.VocabSize];
        session.Append(stream.Take(24).ToArray(), last);
        var expected = a[0, 23].data<float>().ToArray();
        for (int i = 0; i < last.Length; i++) Assert.Equal(expected[i], last[i], 3);
    }

    [Fact]
    public void Smoke_pipeline_writes_four_loadable_models_with_one_vocabulary()
    {
        string outDir = Init.NewDir("pipeline");
        var reports = TrainPipeline.Run(PipelineOptions.Smoke(outDir), TextWriter.Null);
        Assert.Equal(4, reports.Count);
        foreach (var r in reports) Assert.True(r.FinalLoss < r.FirstLoss, $"{r.Name}: loss {r.FirstLoss} -> {r.FinalLoss}");
        foreach (var name in TrainPipeline.ModelNames)
            foreach (var f in new[] { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json" })
                Assert.True(File.Exists(Path.Combine(outDir, name, f)), $"{name}/{f} missing");

        using var catalog = new ModelCatalog(TrainPipeline.ModelNames.Select(n => new ModelSource(n, Path.Combine(outDir, n))),
            (d, n) => LlamaInferenceModel.Load(d, new InferenceOptions { Name = n }), d => TokenizerLoader.Load(d), includeDemoModels: false);
        var combination = new ProxyCombination("base-large", [new ExpertPair("tuned-small", "base-small")]);
        catalog.CheckCombination(combination);
        var result = new ProxyDecoder(catalog).Generate(combination, "What is 12 + 30?", new SamplingOptions { MaxNewTokens = 4 });
        Assert.InRange(result.CompletionTokens, 1, 4);
    }
}

public class TaskFileTests
{
    [Fact]
    public void Task_files_parse_rules_and_report_bad_lines()
    {
        string dir = Init.NewDir("tasks");
        string ok = Path.Combine(dir, "ok.jsonl");
        File.WriteAllLines(ok,
        [
            """{"task":"qa","prompt":"Where does Alice live?","reference":"Answer: Paris"}""",
            "# comment",
            """{"prompt":"2+2?","reference":"4","rule":"contains"}""",
            """{"prompt":"Name?","reference":"^Answer: [A-Z]\\w+$","rule":"regex"}""",
        ]);
        var items = EvalTasks.Load(ok);
        Assert.Equal(3, items.Count);
        Assert.True(items[0].Score("Answer: Paris\nmore"));
        Assert.False(items[0].Score("answer: Paris"));
        Assert.True(items[1].Score("it is 4."));
        Assert.Equal("custom", items[1].Task);
        Assert.True(items[2].Score("  Answer: Oslo"));
        Assert.False(items[2].Score("Answer: oslo"));

        string bad = Path.Combine(dir, "bad.jsonl");
        File.WriteAllLines(bad, ["""{"prompt":"x","reference":"y","rule":"fuzzy"}"""]);
        var e = Assert.Throws<InvalidDataException>(() => EvalTasks.Load(bad));
        Assert.Contains(":1:", e.Message);
        Assert.Contains("rule", e.Message);
        File.WriteAllLines(bad, ["""{"reference":"y"}"""]);
        Assert.Contains("prompt", Assert.Throws<InvalidDataException>(() => EvalTasks.Load(bad)).Message);
    }

    [Fact]
    public void Gap_closed_follows_the_paper_definition()
    {
        Assert.Equal(0.9, Report.GapClosed(0.1, 0.82, 0.9), 9);
        Assert.True(double.IsNaN(Report.GapClosed(0.5, 0.7, 0.5)));
    }

    [Fact]
    public void Combination_option_parses_pairs_and_rejects_bad_keys()
    {
        var s = Evaluate.ParseCombination("base=base-large,expert=tuned-small,anti=base-small,weight=0.5,alpha=1.5");
        Assert.Equal("base-large", s.Combination.Base);
        Assert.Equal(1.5f, s.Combination.Alpha);
        Assert.Equal(new ExpertPair("tuned-small", "base-small", 0.5f), Assert.Single(s.Combination.Experts));
        Assert.Throws<FormatException>(() => Evaluate.ParseCombination("base=a,expert=b"));
        Assert.Throws<FormatException>(() => Evaluate.ParseCombination("base=a,alpha=nan"));
        Assert.Throws<FormatException>(() => Evaluate.ParseCombination("bass=a"));
    }
}

public class BundledModelTests
{
    [Fact]
    public void Bundled_models_are_complete_share_one_vocabulary_and_fit_the_size_budget()
    {
        string demo = Path.Combine(ProxyOrleans.TestSupport.TestEnvironment.RepoRoot(), "models", "demo");
        Assert.True(Directory.Exists(demo), $"{demo} missing: the bundled models are trained by src/Training (train --out models/demo)");
        long bytes = 0;
        foreach (var name in TrainPipeline.ModelNames)
        {
            string dir = Path.Combine(demo, name);
            var config = LlamaConfig.Load(dir);
            var tok = TokenizerLoader.Load(dir);
            Assert.Equal(tok.VocabSize, config.VocabSize);
            bytes += new FileInfo(Path.Combine(dir, "model.safetensors")).Length;
        }
        Assert.True(bytes <= 30L << 20, $"bundled weights are {bytes / 1e6:F1} MB, over the 30 MB budget");
        using var catalog = new ModelCatalog(null, (d, n) => LlamaInferenceModel.Load(d, new InferenceOptions { Name = n }),
            d => TokenizerLoader.Load(d), includeDemoModels: true);
        catalog.CheckCombination(new ProxyCombination("base-large", [new ExpertPair("tuned-small", "base-small")]));
    }
}
