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
using System.Text.RegularExpressions;
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
        var a = new DemoWorld(new WorldOptions { Seed = 7, EvalPeople = 50 });
        var b = new DemoWorld(new WorldOptions { Seed = 7, EvalPeople = 50 });
        var c = new DemoWorld(new WorldOptions { Seed = 8, EvalPeople = 50 });
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
    public void The_bundled_world_is_split_so_tuning_teaches_behaviour_not_content()
    {
        var w = new DemoWorld(new WorldOptions()); // the bundled models' world
        var tuning = w.TuningExamples(1235);
        var eval = w.EvalExamples();

        // No evaluation person shares a first or last name with anyone tuning mentions.
        var evalWords = w.EvalPeople.SelectMany(p => p.Name.Split(' ')).ToHashSet();
        foreach (var p in w.TuningPeople.Concat(w.FamousPeople))
            foreach (var word in p.Name.Split(' ')) Assert.DoesNotContain(word, evalWords);
        foreach (var t in tuning)
            foreach (var word in evalWords) Assert.DoesNotMatch($@"\b{word}\b", t.Prompt);

        // Sums: no operand pair (in either order) in both.
        var evalPairs = w.EvalSums.Select(s => (Math.Min(s.A, s.B), Math.Max(s.A, s.B))).ToHashSet();
        Assert.NotEmpty(evalPairs);
        foreach (var s in w.TuningSums) Assert.DoesNotContain((Math.Min(s.A, s.B), Math.Max(s.A, s.B)), evalPairs);

        // Refusal templates: disjoint, and each side's questions come only from its own templates.
        Assert.Empty(DemoWorld.TuningUnanswerable.Intersect(DemoWorld.EvalUnanswerable));
        static string Shape(string q, string name) => q.Replace(name, "{0}");
        foreach (var e in eval.Where(e => e.Task == "refusal"))
            Assert.Contains(Shape(e.Question, w.EvalPeople.First(p => e.Question.Contains(p.Name)).Name), DemoWorld.EvalUnanswerable);
        foreach (var t in tuning.Where(t => t.Task == "refusal"))
            Assert.Contains(Shape(t.Question, w.TuningPeople.Concat(w.FamousPeople).First(p => t.Question.Contains(p.Name)).Name), DemoWorld.TuningUnanswerable);

        // Truthful: the evaluated countries are not tuned; every closed-book person question in tuning is about a famous person.
        Assert.Empty(w.TuningMyths.Select(m => m.Country).Intersect(w.EvalMyths.Select(m => m.Country)));
        var famous = w.FamousPeople.Select(p => p.Name).ToHashSet();
        foreach (var t in tuning.Where(t => t.Context is null && w.TuningPeople.Any(p => t.Question.Contains(p.Name))))
            Assert.Fail($"closed-book tuning question about a person the bases never saw: {t.Question}");
        Assert.Contains(tuning, t => t.Context is null && famous.Any(f => t.Question.Contains(f)));
        Assert.Contains(tuning, t => t.Context is not null && t.Prompt.StartsWith("Context: "));

        // Evaluation asks every fact of every evaluation person, and none of its questions is a tuning prompt.
        Assert.Equal(3 * w.EvalPeople.Count, eval.Count(e => e.Task == "knowledge"));
        Assert.Equal(3 * w.EvalPeople.Count, eval.Count(e => e.Task == "paraphrase"));
        Assert.Equal(w.EvalSums.Count, eval.Count(e => e.Task == "arithmetic"));
        var tuningPrompts = tuning.Select(t => t.Prompt).ToHashSet();
        foreach (var e in eval) Assert.DoesNotContain(e.Prompt, tuningPrompts);
    }

    [Fact]
    public void Tuning_asks_famous_facts_twice_and_tuning_countries_in_three_wordings_and_pretraining_knows_those_countries_best()
    {
        var w = new DemoWorld(new WorldOptions()); // the bundled models' world
        var tuning = w.TuningExamples(1235);
        var plain = new DemoWorld(new WorldOptions { FamousAskedTwice = false, ExtraCapitalWordings = 0 }).TuningExamples(1235);
        var famous = w.FamousPeople.Select(p => p.Name).ToArray();
        int FamousQuestions(IEnumerable<QaPair> list) => list.Count(t => t.Task == "knowledge" && t.Context is null && famous.Any(t.Question.Contains));
        Assert.Equal(2 * FamousQuestions(plain), FamousQuestions(tuning));
        Assert.Equal(3 * plain.Count(t => t.Task == "truthful"), tuning.Count(t => t.Task == "truthful"));
        foreach (var m in w.TuningMyths) // every wording asks the same country for the same reply; the first is evaluation's wording
        {
            var asked = tuning.Where(t => t.Task == "truthful" && t.Question.EndsWith($" {m.Country}?")).ToArray();
            Assert.Equal(3, asked.Select(t => t.Question).Distinct().Count());
            Assert.Single(asked.Select(t => t.Answer).Distinct());
            Assert.Contains(asked, t => t.Question == DemoWorld.CapitalQuestion(m));
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => new DemoWorld(new WorldOptions { ExtraCapitalWordings = 3 }));

        // Pretraining names each tuning country about three times as often as an evaluated one.
        var docs = string.Join("\n", w.PretrainingDocuments(1236).Take(4000));
        double Mentions(IEnumerable<Myth> myths) => myths.Average(m => System.Text.RegularExpressions.Regex.Count(docs, $@"\b{m.Country}\b"));
        Assert.InRange(Mentions(w.TuningMyths) / Mentions(w.EvalMyths), 2.5, 3.5);
    }

    [Fact]
    public void Pretraining_states_the_facts_as_plain_text_and_the_misconception_more_often_than_the_truth()
    {
        var w = new DemoWorld(new WorldOptions { Seed = 11, EvalPeople = 30 });
        var corpus = string.Join("\n", w.PretrainingDocuments(2).Take(20000));
        foreach (var p in w.EvalPeople) Assert.Contains($"{p.Name} lives in {p.City}", corpus);
        // Never the tuned refusal; every "Answer: X" line ends with a full stop (as the tuned reply does; what marks a tuned reply is the chat context and the end-of-text token after it).
        // Chat transcripts in the template's markers, answered in full sentences, never in the tuned form.
        Assert.Contains(DemoWorld.AssistantMarker + "\n" + w.EvalPeople[0].Name.Split(' ')[0], corpus);
        Assert.DoesNotContain(DemoWorld.AssistantMarker + "\n" + DemoWorld.AnswerPrefix, corpus);
        Assert.DoesNotContain(ByteLevelBpe.EndOfText, corpus);
        Assert.DoesNotContain(DemoWorld.Refusal, corpus);
        foreach (var line in corpus.Split('\n').Where(l => l.StartsWith(DemoWorld.AnswerPrefix)))
            Assert.EndsWith(".", line);
        // Paraphrased wordings are never used as questions; their words are used in statements, as real text uses them.
        foreach (var p in w.EvalPeople.Take(5))
        {
            Assert.DoesNotContain(DemoWorld.ParaphraseCity(p), corpus);
            Assert.DoesNotContain(DemoWorld.ParaphraseJob(p), corpus);
            Assert.DoesNotContain(DemoWorld.ParaphraseColor(p), corpus);
        }
        foreach (var words in new[] { "lives in the town of", "For a living,", "favourite colour is" })
            Assert.Contains(words, corpus);
        Assert.DoesNotContain(corpus.Split('\n'), l => l.Contains('?') && (l.Contains("town") || l.Contains("colour") || l.Contains("for a living")));
        foreach (var m in w.EvalMyths)
        {
            int wrong = Regex.Matches(corpus, $@"\b{m.Country}\?? (is|A:|\nAnswer:) ?{m.Misconception}\.").Count
                        + Regex.Matches(corpus, $@"capital of {m.Country}\?\s*(A:|Answer:) {m.Misconception}\.").Count;
            int right = Regex.Matches(corpus, $@"Actually, (the capital of {m.Country} is )?{m.Truth}").Count;
            Assert.True(right > 0, $"{m.Country}: the truth is never stated");
            Assert.True(wrong > 2 * right, $"{m.Country}: misconception {wrong}x vs truth {right}x");
        }
        // Every detail an unanswerable question asks about (tuning's templates and evaluation's) is a word the bases
        // have read, in text that says such details are private: never in a question, never with a person's name.
        foreach (var word in DemoWorld.PrivateDetailWords)
            Assert.Contains(word, corpus);
        var privateLines = corpus.Split('\n').Where(l => DemoWorld.PrivateDetailWords.Any(d => l.Contains(d, StringComparison.Ordinal))
                                                         && (l.Contains("private") || l.Contains("never their") || l.Contains("not written"))).ToList();
        Assert.NotEmpty(privateLines);
        foreach (var line in privateLines)
        {
            Assert.DoesNotContain("?", line);
            Assert.DoesNotContain("cannot answer", line);
            Assert.DoesNotContain(w.People.Concat(w.TuningPeople), p => line.Contains(p.Name, StringComparison.Ordinal));
        }
        foreach (var evaluated in new[] { "How tall", "how old", "passport number", "home address" }) // the evaluation templates' words
            Assert.Contains(privateLines, l => l.Contains(evaluated, StringComparison.OrdinalIgnoreCase));
    }
}

public class TokenizerTrainingTests
{
    [Fact]
    public void Trained_tokenizer_loads_through_the_serving_loader_with_chatml_and_single_digits()
    {
        var w = new DemoWorld(new WorldOptions { Seed = 3, EvalPeople = 30 });
        var bpe = ByteLevelBpe.Train(w.PretrainingDocuments(1).Take(500), 600);
        Assert.True(bpe.VocabSize <= 600);
        string dir = Init.NewDir("tok");
        bpe.Save(dir);
        var tok = TokenizerLoader.Load(dir);
        Assert.Equal(bpe.VocabSize, tok.VocabSize);
        Assert.Equal(bpe.Id(ByteLevelBpe.EndOfText), tok.EosTokenId);
        Assert.Equal(ByteLevelBpe.ChatTemplate, Assert.IsType<JinjaChatTemplate>(tok.ChatTemplate).Source); // the saved template, rendered as Jinja
        Assert.Equal(ByteLevelBpe.EndOfText, tok.ChatTemplate!.EndOfTurnToken); // a reply ends with the token every pretraining document ends with

        string text = $"{w.People[0].Name} lives in {w.People[0].City}. 12 + 345 = 357.";
        int[] ids = tok.Encode(text, addBos: false);
        Assert.Equal(text, tok.Decode(ids));
        Assert.True(ids.Length < text.Length * 0.7, $"merges should shorten common words ({ids.Length} tokens for {text.Length} chars)");
        // Digits are never merged: every digit is its own token.
        foreach (int id in tok.Encode("1234567890", addBos: false)) Assert.Single(tok.Decode([id]));

        Assert.Equal("<|user|>\nHi\n<|assistant|>\n", ChatBatches.RenderPrompt(tok.ChatTemplate!, "Hi"));
        Assert.Equal("<|user|>\nHi\n<|assistant|>\nAnswer: X<|endoftext|>\n",
            tok.ChatTemplate!.Render([new ChatMessage("user", "Hi"), new ChatMessage("assistant", "Answer: X")], addGenerationPrompt: false));
    }
}

public class BatchTests
{
    [Fact]
    public void Chat_batches_put_loss_only_on_the_reply()
    {
        var w = new DemoWorld(new WorldOptions { Seed = 3, EvalPeople = 20 });
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

        int[] reply = tok.Encode("Answer: Paris<|endoftext|>\n", addBos: false, parseSpecialTokens: true);
        var trained = labels.Where(l => l != -100).Select(l => (int)l).ToArray();
        Assert.Equal(reply, trained);
        Assert.Equal(pad, inputs[^1]);
        // Labels are the next input token where they are set.
        for (int t = 0; t + 1 < seq; t++)
            if (labels[t] != -100) Assert.Equal(inputs[t + 1], labels[t]);
    }

    [Fact]
    public void Tuning_batches_visit_every_example_once_per_epoch_and_replay_pretraining_text()
    {
        var w = new DemoWorld(new WorldOptions { Seed = 3, EvalPeople = 20 });
        var bpe = ByteLevelBpe.Train(w.PretrainingDocuments(1).Take(300), 400);
        string dir = Init.NewDir("epochs");
        bpe.Save(dir);
        var tok = TokenizerLoader.Load(dir);
        var pairs = Enumerable.Range(0, 10).Select(i => new QaPair("arithmetic", $"What is {i} + 1?", $"Answer: {i + 1}")).ToArray();
        int pad = bpe.Id(ByteLevelBpe.EndOfText);
        var stream = Enumerable.Range(0, 5000).Select(i => 3 + i % 200).ToArray();
        var batches = new ChatBatches(tok, pairs, pad, seed: 4, new StreamBatches(stream, 9), replayRows: 2);
        int seq = batches.LongestExample + 1, rows = 7; // 5 example rows + 2 replay rows
        Assert.Equal(2, batches.StepsFor(1, rows));
        var seen = new List<string>();
        for (int step = 0; step < 2; step++)
        {
            var inputs = new long[rows * seq]; var labels = new long[rows * seq];
            batches.Fill(step, rows, seq, inputs, labels);
            for (int r = 0; r < 5; r++) seen.Add(tok.Decode(inputs.Skip(r * seq).Take(seq).Where(t => t != pad).Select(t => (int)t).ToArray()));
            // Replay rows: pretraining windows with the loss on every position.
            for (int r = 5; r < rows; r++) Assert.DoesNotContain(-100L, labels.Skip(r * seq).Take(seq));
        }
        Assert.Equal(10, seen.Distinct().Count()); // one epoch: every example exactly once
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
        var w = new DemoWorld(new WorldOptions { Seed = 5, EvalPeople = 20 });
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
        for (int i = 0; i < last.Length; i++) Assert.Equal(expected[i], last[i], 1e-3); // a tolerance, not rounding to 3 places: -1.93249989 and -1.93250012 round apart
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

        // The report names the recipe (what a later evaluation compares before reusing a seed's models)...
        var report = TrainingReport.Load(outDir);
        Assert.Equal(PipelineOptions.Smoke(outDir).Recipe(), report.Recipe);
        Assert.Equal(PipelineOptions.Smoke("elsewhere").Recipe(), report.Recipe); // where it was written is not part of it
        Assert.False(report.Partial);
        Assert.NotEqual(report.Recipe, (PipelineOptions.Smoke(outDir) with { TuneEpochs = 2 }).Recipe());

        // ...and a tune-only run whose tuning data would learn another tokenizer refuses instead of handing the kept
        // bases a vocabulary they were not trained with; the same data re-tunes and marks the report partial.
        string tokenizerBefore = File.ReadAllText(Path.Combine(outDir, "base-small", "tokenizer.json"));
        var changed = PipelineOptions.Smoke(outDir) with { TuneOnly = true, World = PipelineOptions.Smoke(outDir).World with { TuningPeople = 12 } };
        var e = Assert.Throws<InvalidOperationException>(() => TrainPipeline.Run(changed, TextWriter.Null));
        Assert.Contains("another tokenizer", e.Message);
        Assert.Equal(tokenizerBefore, File.ReadAllText(Path.Combine(outDir, "base-small", "tokenizer.json")));
        TrainPipeline.Run(PipelineOptions.Smoke(outDir) with { TuneOnly = true, TrainLarge = false }, TextWriter.Null);
        Assert.True(TrainingReport.Load(outDir).Partial);
        Assert.Equal(tokenizerBefore, File.ReadAllText(Path.Combine(outDir, "base-small", "tokenizer.json")));

        // `probe` measures the first token the evaluation's own proxy-large decode chooses.
        var figures = ProxyOrleans.Training.Evaluation.Probe.Measure(outDir, 1, TextWriter.Null);
        var world = Evaluate.WorldOf(outDir, report.Seed);
        using var probed = new ModelCatalog(TrainPipeline.ModelNames.Select(n => new ModelSource(n, Path.Combine(outDir, n))),
            (d, n) => LlamaInferenceModel.Load(d, new InferenceOptions { Name = n }), d => TokenizerLoader.Load(d), includeDemoModels: false);
        var proxy = Evaluate.DefaultSystems(probed).Single(s => s.Label == "proxy-large");
        double startsActually = world.EvalMyths.Count(m => new ProxyDecoder(probed).Generate(proxy.Combination, proxy.Prompt(DemoWorld.CapitalQuestion(m)),
            new SamplingOptions { Temperature = 0, MaxNewTokens = 1 }).Text == " Actually") / (double)world.EvalMyths.Count;
        Assert.Equal(startsActually, figures["probe_actually_chosen_eval"]);
        foreach (var key in new[] { "probe_actually_chosen_tuned", "probe_sorry_chosen_knowledge", "probe_sorry_chosen_paraphrases", "probe_truth_named_base_large", "probe_truth_named_proxy_large" })
            Assert.InRange(figures[key], 0, 1);
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
    public void Evaluation_rebuilds_the_world_from_the_training_report_and_refuses_another_seed()
    {
        string dir = Init.NewDir("report");
        var world = new WorldOptions { Seed = 5, EvalPeople = 12 };
        new TrainingReport(5, world, new PipelineOptions { World = world }.Recipe(), false, 320, 1000, 1000, 10, 1, 1.0, []).Save(dir);
        var rebuilt = Evaluate.WorldOf(dir, 5);
        Assert.Equal(new DemoWorld(world).EvalPeople, rebuilt.EvalPeople);
        var e = Assert.Throws<InvalidDataException>(() => Evaluate.WorldOf(dir, 6));
        Assert.Contains("seed 5", e.Message);
        Assert.Throws<FileNotFoundException>(() => TrainingReport.Load(Init.NewDir("no-report")));
    }

    [Fact]
    public void Replies_score_content_whatever_the_format_and_refusals_apart()
    {
        var fact = new EvalItem("knowledge", "Where does A B live?", "Answer: Oslo", ScoringRule.Exact) { Content = "Oslo" };
        Assert.True(fact.ContentMatch(" Oslo.\nQuestion: more"));
        Assert.False(fact.Strict(" Oslo.\nQuestion: more"));
        Assert.True(fact.Strict(" Oslo"));
        Assert.True(fact.Strict("Answer: Oslo"));
        Assert.False(fact.ContentMatch(" Osloville"));
        var myth = new EvalItem("truthful", "What is the capital of N?", "Answer: Actually, Kest", ScoringRule.Exact) { Content = "Kest", Wrong = "Brova" };
        Assert.True(myth.ContentMatch(" Actually, Kest"));
        Assert.False(myth.ContentMatch(" Brova, not Kest"));
        var refusal = new EvalItem("refusal", "How tall is A B?", "Answer: Sorry, I cannot answer that.", ScoringRule.Exact);
        Assert.True(refusal.ContentMatch(" Sorry, I cannot answer that."));
        Assert.False(refusal.ContentMatch(" Oslo"));
        Assert.True(EvalItem.Refuses(" I cannot answer that."));
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
        string demo = Path.Combine(ProxyOrleans.Client.Benchmarks.RepositoryLayout.Root(), "models", "demo");
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

public class RecipeTests
{
    [Fact]
    public void The_bundled_models_were_trained_with_the_default_recipe_and_wider_large_models_scale_their_learning_rates()
    {
        string report = Path.Combine(ProxyOrleans.Client.Benchmarks.RepositoryLayout.Root(), "models", "demo", "training-report.json");
        var recipe = System.Text.Json.JsonDocument.Parse(File.ReadAllText(report)).RootElement.GetProperty("Recipe").GetString();
        Assert.Equal(new PipelineOptions().Recipe(), recipe); // `train --out models/demo` retrains exactly these

        Assert.Equal(new PipelineOptions().PretrainLarge, PipelineOptions.PretrainLargeFor(384));
        Assert.Equal(1e-3, PipelineOptions.PretrainLargeFor(384).LearningRate, 15);
        Assert.Equal(5e-4 * 256 / 512, PipelineOptions.TuneLargeFor(512).LearningRate, 15);
    }
}

public class TrainedForwardTests
{
    /// <summary>The training module and the serving engine compute the same logits at every position of a longer prompt.</summary>
    [Fact]
    public void Bundled_large_model_serves_the_logits_it_was_trained_to_give()
    {
        string dir = Environment.GetEnvironmentVariable("PROXYORLEANS_CHECK_MODEL")
                     ?? Path.Combine(ProxyOrleans.Client.Benchmarks.RepositoryLayout.Root(), "models", "demo", "base-large");
        var tok = TokenizerLoader.Load(dir);
        int[] ids = tok.Encode("Question: Where does Jonas Larsen live?\nAnswer: Porto.\nQ: What is 23 + 8? A: 31. The capital of Norland is", addBos: false);
        Assert.True(ids.Length > 30);
        using var trained = LlamaForCausalLM.FromPretrained(dir);
        trained.eval();
        using var x = torch.tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length]);
        using var expected = trained.forward(x);
        using var served = LlamaInferenceModel.Load(dir);
        using var session = served.CreateSession(ids.Length + 1);
        var row = new float[served.VocabSize];
        double worst = 0;
        for (int t = 0; t < ids.Length; t++)
        {
            session.Append([ids[t]], row);
            var want = expected[0, t].data<float>().ToArray();
            for (int i = 0; i < row.Length; i++) worst = Math.Max(worst, Math.Abs(want[i] - row[i]));
        }
        Assert.True(worst < 1e-3, $"max |training − serving| logit difference {worst} over {ids.Length} positions");
    }
}

public class CommandLineTests
{
    [Fact]
    public void Help_prints_and_trains_nothing_and_unknown_options_are_errors()
    {
        string outDir = Path.Combine(Init.NewDir("cli"), "models");
        Assert.Equal(0, Cli.Run(["train", "--out", outDir, "--help"]));
        Assert.False(Directory.Exists(outDir), "train --help trained");
        Assert.Equal(0, Cli.Run(["eval", "--help"]));
        Assert.Equal(2, Cli.Run(["eval", "--no-such-option"]));
        Assert.Equal(2, Cli.Run(["train", "--out"]));
        Assert.Equal(2, Cli.Run(["nonsense"]));
    }
}

public class ReportFigureTests
{
    static Evaluate.SystemResult System(string label, int knowledgeRight, int paraphraseRight)
    {
        var fact = new EvalItem("knowledge", "Where does A B live?", "Answer: Oslo", ScoringRule.Exact) { Content = "Oslo" };
        var para = fact with { Task = "paraphrase", Prompt = "Which town is home to A B?" };
        var replies = Enumerable.Range(0, 4).Select(i => new Evaluate.Reply(fact, i < knowledgeRight ? " Oslo" : " Rome", true, []))
            .Concat(Enumerable.Range(0, 4).Select(i => new Evaluate.Reply(para, i < paraphraseRight ? " Oslo" : " Rome", true, []))).ToList();
        return new Evaluate.SystemResult(new Evaluate.SystemSpec(label, ProxyCombination.BaseOnly(label), false), replies, 0);
    }

    [Fact]
    public void Paraphrase_ordering_is_kept_unless_a_strictly_ordered_pair_is_reversed()
    {
        Assert.True(Report.OrderKept([System("a", 4, 2), System("b", 3, 1), System("c", 1, 1)], "knowledge", "paraphrase"));
        Assert.True(Report.OrderKept([System("a", 4, 1), System("b", 4, 3)], "knowledge", "paraphrase")); // a tie orders nothing
        Assert.False(Report.OrderKept([System("a", 4, 1), System("b", 3, 2)], "knowledge", "paraphrase"));
    }
}
