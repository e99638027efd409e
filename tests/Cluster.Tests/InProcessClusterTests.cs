using System.Diagnostics;
using System.Runtime.InteropServices;
using ProxyOrleans.Abstractions;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>Three in-process silos, one model each: the distributed path equals the single-process path.</summary>
public sealed class TrioClusterFixture : IAsyncLifetime
{
    public InProcessCluster Cluster { get; private set; } = null!;
    public async Task InitializeAsync() =>
        Cluster = await InProcessCluster.StartAsync(TinyTrio.PathOf, [TinyTrio.Base], [TinyTrio.Expert], [TinyTrio.Anti, TinyTrio.Alien, TinyTrio.Extra]);
    public async Task DisposeAsync() => await Cluster.DisposeAsync();
}

public sealed class InProcessClusterTests(TrioClusterFixture fixture, ITestOutputHelper output) : IClassFixture<TrioClusterFixture>
{
    private IGrainFactory Grains => fixture.Cluster.Grains;
    private const string Prompt = "The capital of France is";

    [Fact]
    public async Task ProxyTunedGreedyEqualsSingleProcessTokenForTokenWithLogitsWithin1e5()
    {
        var reference = TinyTrio.Reference(Prompt, 24);
        var request = TinyTrio.Request(Prompt, 24) with { ReturnLogits = true };
        var (tokens, text, events) = await TinyTrio.Collect(GenerationClient.StreamAsync(Grains, request, "exact-1"));
        Assert.Equal(reference.TokenIds, tokens);
        Assert.Equal(reference.Text, text);
        var final = events[^1];
        Assert.Equal(FinishKind.Length, final.Finish);
        Assert.Equal(new UsageInfo(reference.PromptTokens, 24), final.Usage);

        var expected = TinyTrio.ReferenceLogits(Prompt, tokens);
        float worst = 0;
        var withLogits = events.Where(e => e.Logits is not null).ToList();
        Assert.Equal(24, withLogits.Count);
        for (int i = 0; i < withLogits.Count; i++)
        {
            var got = MemoryMarshal.Cast<byte, float>(withLogits[i].Logits);
            Assert.Equal(expected[i].Length, got.Length);
            for (int j = 0; j < got.Length; j++) worst = Math.Max(worst, Math.Abs(got[j] - expected[i][j]));
        }
        var st = final.Stats!;
        output.WriteLine($"max |Δ combined logit| over 24 steps: {worst:G3}; layout {st.Layout}; prefill {st.PrefillMs:F1} ms, step {st.StepMs:F2} ms " +
                         $"(models {st.ModelMs:F2}, fan-out {st.FanOutMs:F2}, combine {st.CombineMs:F3}, sample {st.SampleMs:F3}, stream {st.StreamMs:F2}), {st.BytesPerStep / 1024:F0} KiB/step");
        Assert.True(worst <= 1e-5f, $"max |Δlogit| {worst}");
    }

    /// <summary>Two floats are the same bits (NaN payloads and the sign of zero included).</summary>
    private static void SameBits(float expected, float actual, string what) =>
        Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(actual), $"{what}: {expected:R} vs {actual:R}");

    private static void SameLogprobs(Inference.Decoding.TokenLogprobs expected, TokenLogprobsSpec actual, string what)
    {
        Assert.Equal(expected.TokenId, actual.Chosen.TokenId);
        SameBits(expected.Logprob, actual.Chosen.Logprob, what);
        Assert.Equal(expected.Top.Select(c => c.TokenId), actual.Top.Select(c => c.TokenId));
        for (int k = 0; k < expected.Top.Length; k++) SameBits(expected.Top[k].Logprob, actual.Top[k].Logprob, $"{what}, top {k}");
    }

    [Theory]
    [InlineData(false)] // expert and anti-expert on silos of their own: the coordinator takes the difference
    [InlineData(true)]  // an expert co-hosted with the anti-expert (silo 2): its pair grain sends w·(expert − anti), per prompt row too
    public async Task Logprobs_and_echo_equal_the_single_process_path_bit_for_bit(bool coHostedPair)
    {
        // The answer cue must not matter: a scored prompt is read as sent by every model, on both paths.
        var spec = (coHostedPair ? new CombinationSpec(TinyTrio.Base, [new ExpertSpec(TinyTrio.Extra, TinyTrio.Anti, 0.7f)], 1.5f) : TinyTrio.Spec(1.5f))
            with { AnswerCue = "Question: {prompt}\nAnswer:" };
        var sampling = new SamplingSpec { Temperature = 0.8f, Seed = 9, MaxNewTokens = 10, StopAtEos = false };
        var reference = TinyTrio.Reference(Prompt, sampling, spec, new Inference.Decoding.DecodeOptions { Logprobs = 5, PromptLogprobs = 3 });
        var request = TinyTrio.Request(Prompt, 10, spec) with { Sampling = sampling, Logprobs = 5, PromptLogprobs = 3 };
        var (tokens, _, events) = await TinyTrio.Collect(GenerationClient.StreamAsync(Grains, request, $"logprobs-{coHostedPair}"));
        Assert.Equal(reference.TokenIds, tokens);
        if (coHostedPair) Assert.Contains(":pair", events[^1].Stats!.Layout);
        else Assert.DoesNotContain(":pair", events[^1].Stats!.Layout);

        var generated = events.Where(e => e.TokenId >= 0).ToList();
        Assert.Equal(reference.Logprobs!.Count, generated.Count);
        for (int i = 0; i < generated.Count; i++) SameLogprobs(reference.Logprobs[i], generated[i].Logprobs!, $"token {i}");

        var prompt = events[0].PromptLogprobs!;
        Assert.All(events.Skip(1), e => Assert.Null(e.PromptLogprobs));
        Assert.Equal(reference.PromptLogprobs!.Length, prompt.Length);
        Assert.True(prompt.Length > 3, $"{prompt.Length} prompt tokens");
        Assert.False(prompt[0].IsScored);
        Assert.Equal(1, prompt[0].Chosen.TokenId); // BOS
        for (int t = 1; t < prompt.Length; t++) SameLogprobs(reference.PromptLogprobs[t]!, prompt[t]!, $"prompt token {t}");
        output.WriteLine($"prompt logprobs: {string.Join(", ", prompt.Skip(1).Select(p => $"{p!.Chosen.Text}:{p.Chosen.Logprob:F3}"))}");

        // max_tokens 0: one event, nothing generated, the same scored prompt.
        var scoreOnly = request with { Sampling = sampling with { MaxNewTokens = 0 } };
        var (none, text, only) = await TinyTrio.Collect(GenerationClient.StreamAsync(Grains, scoreOnly, $"score-only-{coHostedPair}"));
        Assert.Empty(none);
        Assert.Equal("", text);
        var single = Assert.Single(only);
        Assert.Equal(FinishKind.Length, single.Finish);
        Assert.Equal(new UsageInfo(prompt.Length, 0), single.Usage);
        for (int t = 1; t < prompt.Length; t++) SameLogprobs(reference.PromptLogprobs[t]!, single.PromptLogprobs![t]!, $"score-only prompt token {t}");
    }

    [Fact]
    public async Task SeededSamplingWithEveryLogitsProcessorAndAStopTokenEqualsSingleProcess()
    {
        var sampling = TinyTrio.EveryProcessor(32);
        var withProcessors = TinyTrio.Reference(Prompt, sampling);
        var without = TinyTrio.Reference(Prompt, new SamplingSpec { Temperature = 0.9f, TopK = 50, TopP = 0.95f, Seed = 777, MaxNewTokens = 32, StopAtEos = false });
        Assert.NotEqual(without.TokenIds, withProcessors.TokenIds); // the processors change what is sampled
        Assert.DoesNotContain(29889, withProcessors.TokenIds);     // the -100 bias bans "."
        // A stop token taken from the run itself: both paths must end at its first occurrence, finish "stop".
        int stopToken = withProcessors.TokenIds[20];
        sampling = sampling with { StopTokenIds = [stopToken] };
        var reference = TinyTrio.Reference(Prompt, sampling);
        Assert.Equal(Inference.Decoding.FinishReason.Stop, reference.FinishReason);
        Assert.Equal(Array.IndexOf(withProcessors.TokenIds, stopToken) + 1, reference.TokenIds.Length);

        var request = TinyTrio.Request(Prompt, 32) with { Sampling = sampling };
        var (tokens, text, events) = await TinyTrio.Collect(GenerationClient.StreamAsync(Grains, request, "every-processor"));
        Assert.Equal(reference.TokenIds, tokens);
        Assert.Equal(reference.Text, text);
        Assert.Equal(FinishKind.Stop, events[^1].Finish);
    }

    [Fact]
    public async Task ALogitBiasIdOutsideTheVocabularyIsRefusedNamingTheField()
    {
        var request = TinyTrio.Request(Prompt, 4) with { Sampling = new SamplingSpec { MaxNewTokens = 4, LogitBias = new() { [32000] = 1f } } };
        var e = await Assert.ThrowsAsync<InvalidRequestException>(() => TinyTrio.Collect(GenerationClient.StreamAsync(Grains, request, "bias-out-of-vocab")));
        Assert.Equal("logit_bias", e.Field);
        Assert.Contains("32000", e.Message);
    }

    [Fact]
    public async Task AFullContextEndsWhereTheSingleProcessPathEnds()
    {
        // A prompt a few tokens short of max_position_embeddings (256): both paths stop with Length when the window fills.
        var prompt = string.Join(" ", Enumerable.Repeat("hello", 245));
        var reference = TinyTrio.Reference(prompt, 40);
        Assert.Equal(Inference.Decoding.FinishReason.Length, reference.FinishReason);
        Assert.True(reference.TokenIds.Length < 40, $"the context, not max_tokens, must end it: {reference.TokenIds.Length} tokens");
        // The tightest model decides (the expert's prompt, through its chat template, is longer than the base's).
        Assert.True(reference.TokenIds.Length <= 256 - reference.PromptTokens);
        var (tokens, text, events) = await TinyTrio.Collect(GenerationClient.StreamAsync(Grains, TinyTrio.Request(prompt, 40), "context-full"));
        Assert.Equal(reference.TokenIds, tokens);
        Assert.Equal(reference.Text, text);
        Assert.Equal(FinishKind.Length, events[^1].Finish);
        Assert.Equal(new UsageInfo(reference.PromptTokens, reference.TokenIds.Length), events[^1].Usage);
    }

    [Fact]
    public async Task BaseOnlyAndChatPromptsEqualSingleProcess()
    {
        var spec = CombinationSpec.BaseOnly(TinyTrio.Base);
        var reference = TinyTrio.Reference(Prompt, 12, spec);
        var (tokens, _, _) = await TinyTrio.Collect(GenerationClient.StreamAsync(Grains, TinyTrio.Request(Prompt, 12, spec), "base-only-1"));
        Assert.Equal(reference.TokenIds, tokens);

        var chat = TinyTrio.Reference("Tell me a story", 12, chat: true);
        var request = TinyTrio.Request("x", 12) with { Prompt = null, Messages = [new ChatMessageSpec("user", "Tell me a story")] };
        var (chatTokens, _, _) = await TinyTrio.Collect(GenerationClient.StreamAsync(Grains, request, "chat-1"));
        Assert.Equal(chat.TokenIds, chatTokens);
    }

    [Fact]
    public async Task UnhostedModelFailsAtOnceWithAClearError()
    {
        var sw = Stopwatch.StartNew();
        var spec = new CombinationSpec(TinyTrio.Base, [new ExpertSpec("no-such-model", TinyTrio.Anti)], 1f);
        var e = await Assert.ThrowsAsync<ModelNotHostedException>(() => TinyTrio.Collect(GenerationClient.StreamAsync(Grains, TinyTrio.Request(Prompt, 4, spec), "unhosted")));
        Assert.Contains("no-such-model", e.Message);
        Assert.Contains(TinyTrio.Base, e.Message); // lists what is hosted
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"took {sw.Elapsed}");
        // A direct model grain call for an unhosted model is refused by placement, not retried into a timeout.
        await Assert.ThrowsAnyAsync<Exception>(() => Grains.GetGrain<IModelGrain>("no-such-model").GetInfo());
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"took {sw.Elapsed}");
    }

    [Fact]
    public async Task ATrioWhoseTokenizersDifferIsRefusedWithTheSingleProcessMessage()
    {
        // The alien has the trio's logits count (the old size-only check let it through) but another tokenizer.
        var combination = new Inference.Decoding.ProxyCombination(TinyTrio.Base, [new Inference.Decoding.ExpertPair(TinyTrio.Expert, TinyTrio.Alien)], 1f);
        using var catalog = new Inference.Decoding.ModelCatalog(
            [new(TinyTrio.Base, TinyTrio.Dir(TinyTrio.Base)), new(TinyTrio.Expert, TinyTrio.Dir(TinyTrio.Expert)), new(TinyTrio.Alien, TinyTrio.AlienPath)],
            (dir, name) => Inference.Models.LlamaInferenceModel.Load(dir, new Inference.Models.InferenceOptions { Name = name }),
            dir => Inference.Tokenization.TokenizerLoader.Load(dir), includeDemoModels: false);
        var single = Assert.Throws<InvalidOperationException>(() => catalog.CheckCombination(combination));

        var spec = new CombinationSpec(TinyTrio.Base, [new ExpertSpec(TinyTrio.Expert, TinyTrio.Alien)], 1f);
        var e = await Assert.ThrowsAsync<InvalidRequestException>(() => TinyTrio.Collect(GenerationClient.StreamAsync(Grains, TinyTrio.Request(Prompt, 4, spec), "alien")));
        Assert.Equal(single.Message, e.Message);
        Assert.Contains("do not share a vocabulary", e.Message);
        Assert.Contains(TinyTrio.Alien, e.Message);
        // The same refusal when the alien is an expert co-hosted with its anti-expert (silo 3 hosts both: the pair
        // layout, where one pair grain reports both vocabularies).
        var pair = new CombinationSpec(TinyTrio.Base, [new ExpertSpec(TinyTrio.Alien, TinyTrio.Anti)], 1f);
        var pe = await Assert.ThrowsAsync<InvalidRequestException>(() => TinyTrio.Collect(GenerationClient.StreamAsync(Grains, TinyTrio.Request(Prompt, 4, pair), "alien-pair")));
        Assert.Contains("do not share a vocabulary", pe.Message);
        Assert.Contains(TinyTrio.Alien, pe.Message);
        // The matching trio still runs.
        var (tokens, _, _) = await TinyTrio.Collect(GenerationClient.StreamAsync(Grains, TinyTrio.Request(Prompt, 2), "after-alien"));
        Assert.Equal(2, tokens.Length);

        // An expert whose tokenizer adds a few tokens is allowed, as in the single-process path, with the same output.
        var extra = new CombinationSpec(TinyTrio.Base, [new ExpertSpec(TinyTrio.Extra, TinyTrio.Anti)], 1f);
        var reference = TinyTrio.Reference(Prompt, 8, extra);
        var (extraTokens, extraText, _) = await TinyTrio.Collect(GenerationClient.StreamAsync(Grains, TinyTrio.Request(Prompt, 8, extra), "extra-tokens"));
        Assert.Equal(reference.TokenIds, extraTokens);
        Assert.Equal(reference.Text, extraText);
    }

    [Fact]
    public async Task AnswerCueAndResponsePrefixPrefillTheSameIdsAndTokensAsSingleProcess()
    {
        var spec = TinyTrio.Spec() with { AnswerCue = "Question: {prompt}\nAnswer:", ExpertResponsePrefix = "Answer:" };
        string[] models = [TinyTrio.Base, TinyTrio.Expert, TinyTrio.Anti];
        foreach (var chat in new[] { false, true })
        {
            var expectedIds = TinyTrio.ReferencePromptIds(Prompt, spec, chat);
            var bareIds = TinyTrio.ReferencePromptIds(Prompt, TinyTrio.Spec(), chat);
            for (int m = 0; m < 3; m++) Assert.NotEqual(bareIds[m], expectedIds[m]); // each model sees the option meant for it

            // Each model grain, opened as the coordinator opens it, prefills the single-process ids.
            for (int m = 0; m < 3; m++)
            {
                var session = $"cue-{chat}-{m}";
                var opened = await Grains.GetGrain<IModelGrain>(models[m]).Open(new OpenSessionRequest
                {
                    SessionId = session, Prompt = chat ? null : Prompt, Messages = chat ? [new ChatMessageSpec("user", Prompt)] : null,
                    ApplyChatTemplate = m == 1, AnswerCue = spec.AnswerCue, ExpertResponsePrefix = spec.ExpertResponsePrefix, MaxNewTokens = 4,
                });
                await Grains.GetGrain<IModelGrain>(models[m]).Close(session);
                Assert.Equal(expectedIds[m], opened.PromptIds);
            }

            // The coordinator carries the options to every model: the same tokens as ProxyDecoder.
            var reference = TinyTrio.Reference(Prompt, 12, spec, chat);
            var request = TinyTrio.Request(Prompt, 12, spec);
            if (chat) request = request with { Prompt = null, Messages = [new ChatMessageSpec("user", Prompt)] };
            var (tokens, text, events) = await TinyTrio.Collect(GenerationClient.StreamAsync(Grains, request, $"cue-run-{chat}"));
            Assert.Equal(reference.TokenIds, tokens);
            Assert.Equal(reference.Text, text);
            Assert.Equal(reference.PromptTokens, events[^1].Usage!.PromptTokens);
        }
    }

    [Fact]
    public async Task Fp16AtOpenHalvesTheBytesOfEveryStepAndStaysClose()
    {
        // The precision is given at open and applies to every later step of the session (model and pair grains).
        foreach (var pair in new[] { false, true })
        {
            var spec = pair ? new CombinationSpec(TinyTrio.Base, [new ExpertSpec(TinyTrio.Extra, TinyTrio.Anti)], 1f) : TinyTrio.Spec();
            var fp32 = await TinyTrio.Collect(GenerationClient.StreamAsync(Grains, TinyTrio.Request(Prompt, 6, spec) with { ReturnLogits = true }, $"fp32-{pair}"));
            var fp16 = await TinyTrio.Collect(GenerationClient.StreamAsync(Grains,
                TinyTrio.Request(Prompt, 6, spec) with { ReturnLogits = true, Precision = LogitsPrecision.Float16 }, $"fp16-{pair}"));
            double full = fp32.Events[^1].Stats!.BytesPerStep, half = fp16.Events[^1].Stats!.BytesPerStep;
            var first32 = MemoryMarshal.Cast<byte, float>(fp32.Events[0].Logits);
            var first16 = MemoryMarshal.Cast<byte, float>(fp16.Events[0].Logits);
            float worst = 0;
            for (int j = 0; j < first32.Length; j++) worst = Math.Max(worst, Math.Abs(first32[j] - first16[j]));
            output.WriteLine($"{(pair ? "pair grain" : "separate models")}: {full / 1024:F0} KiB/step fp32, {half / 1024:F0} KiB/step fp16; max |Δ first-step logit| {worst:G3}");
            Assert.Equal(full / 2, half);
            Assert.True(worst > 0 && worst < 0.05f, $"fp16 first-step logits differ by {worst}");
        }
    }

    [Fact]
    public async Task AnAnswerCueWithoutThePlaceholderIsRefusedNamingTheField()
    {
        var spec = TinyTrio.Spec() with { AnswerCue = "Question: Answer:" };
        var e = await Assert.ThrowsAsync<InvalidRequestException>(() => TinyTrio.Collect(Grains.GetGrain<IGenerationGrain>("x/bad-cue")
            .Generate(TinyTrio.Request(Prompt, 4, spec))));
        Assert.Equal("answer_cue", e.Field);
        Assert.Contains("{prompt}", e.Message);
        // A model grain opened directly refuses it the same way.
        var m = await Assert.ThrowsAsync<InvalidRequestException>(() => Grains.GetGrain<IModelGrain>(TinyTrio.Base)
            .Open(new OpenSessionRequest { SessionId = "bad-cue", Prompt = Prompt, AnswerCue = "Question: Answer:" }));
        Assert.Equal("answer_cue", m.Field);
    }

    [Fact]
    public async Task BadRequestsNameTheField()
    {
        var e = await Assert.ThrowsAsync<InvalidRequestException>(() => TinyTrio.Collect(Grains.GetGrain<IGenerationGrain>("x/bad-1")
            .Generate(TinyTrio.Request(Prompt, 4) with { Combination = TinyTrio.Spec(float.NaN) })));
        Assert.Equal("alpha", e.Field);
        var e2 = await Assert.ThrowsAsync<InvalidRequestException>(() => TinyTrio.Collect(Grains.GetGrain<IGenerationGrain>("x/bad-2")
            .Generate(TinyTrio.Request(Prompt, 4) with { Sampling = new SamplingSpec { TopP = 2 } })));
        Assert.Equal("sampling", e2.Field);
        var e3 = await Assert.ThrowsAsync<InvalidRequestException>(() => TinyTrio.Collect(Grains.GetGrain<IGenerationGrain>("x/bad-3")
            .Generate(TinyTrio.Request(Prompt, 4) with { ConsumerLeaseSeconds = -1 })));
        Assert.Equal("consumer_lease_seconds", e3.Field);
    }

    [Fact]
    public async Task StepIsIdempotentPerSessionAndStep()
    {
        var model = Grains.GetGrain<IModelGrain>(TinyTrio.Base);
        var open = await model.Open(new OpenSessionRequest { SessionId = "idem-1", Prompt = Prompt, MaxNewTokens = 8 });
        var first = await model.Step("idem-1", 1, 42);
        var again = await model.Step("idem-1", 1, 42); // a retried call: same logits, no second append
        Assert.Equal(first.Logits.Value, again.Logits.Value);
        var next = await model.Step("idem-1", 2, 7);
        Assert.NotEqual(first.Logits.Value, next.Logits.Value);
        await Assert.ThrowsAsync<InvalidRequestException>(() => model.Step("idem-1", 5, 7));
        await model.Close("idem-1");
        await Assert.ThrowsAsync<SessionNotFoundException>(() => model.Step("idem-1", 3, 7));
        Assert.True(open.PromptTokens > 1);
    }

    [Fact]
    public async Task CancellationStopsTheGenerationAndFreesSessionsOnEverySilo()
    {
        using var cts = new CancellationTokenSource();
        var events = new List<TokenEvent>();
        try
        {
            await foreach (var ev in Grains.GetGrain<IGenerationGrain>(GenerationKeys.Create(TinyTrio.Base, "cancel-1")).Generate(TinyTrio.Request(Prompt, 200), cts.Token))
            {
                events.Add(ev);
                if (events.Count == 3) cts.Cancel();
            }
        }
        catch (OperationCanceledException) { }
        Assert.True(events.Count < 200);
        // Sessions are closed on all three silos.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < deadline && Enumerable.Range(0, 3).Any(i => fixture.Cluster.Hosted(i).Workers.Any(w => w.ActiveSessions > 0)))
            await Task.Delay(100);
        Assert.All(Enumerable.Range(0, 3), i => Assert.All(fixture.Cluster.Hosted(i).Workers, w => Assert.Equal(0, w.ActiveSessions)));
    }

    [Fact]
    public async Task SixteenConcurrentGenerationsAreCorrectAndFasterThanSequential()
    {
        string[] prompts = ["The capital of France is", "Once upon a time", "In 1492, Columbus", "The best way to learn is"];
        const int n = 16, tokens = 16;
        var expected = prompts.Select(p => TinyTrio.Reference(p, tokens).TokenIds).ToArray();
        await TinyTrio.Collect(GenerationClient.StreamAsync(Grains, TinyTrio.Request(prompts[0], 4), "warm")); // warm-up

        var sw = Stopwatch.StartNew();
        for (int i = 0; i < n; i++)
        {
            var (t, _, _) = await TinyTrio.Collect(GenerationClient.StreamAsync(Grains, TinyTrio.Request(prompts[i % 4], tokens), $"seq-{i}"));
            Assert.Equal(expected[i % 4], t);
        }
        var sequential = sw.Elapsed;

        sw.Restart();
        var results = await Task.WhenAll(Enumerable.Range(0, n).Select(i =>
            TinyTrio.Collect(GenerationClient.StreamAsync(Grains, TinyTrio.Request(prompts[i % 4], tokens), $"conc-{i}"))));
        var concurrent = sw.Elapsed;
        for (int i = 0; i < n; i++) Assert.Equal(expected[i % 4], results[i].Tokens);
        var batches = Enumerable.Range(0, 3).Sum(i => fixture.Cluster.Hosted(i).Workers.Sum(w => w.Batches));
        var steps = Enumerable.Range(0, 3).Sum(i => fixture.Cluster.Hosted(i).Workers.Sum(w => w.Steps));
        output.WriteLine($"16 x {tokens} tokens: sequential {sequential.TotalMilliseconds:F0} ms, concurrent {concurrent.TotalMilliseconds:F0} ms " +
                         $"(speed-up {sequential / concurrent:F2}x); mean batch size so far {(double)steps / batches:F2} (shared machine: indicative only)");
        Assert.True(concurrent < sequential, $"concurrent {concurrent} vs sequential {sequential}");
    }
}
