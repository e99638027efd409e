using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Models;
using Xunit;

namespace ProxyOrleans.Inference.Tests.Decoding;

public sealed class TinyFamilyFixture : IDisposable
{
    internal TinyFamily Family { get; } = new();
    public ModelCatalog Catalog { get; }
    public TinyFamilyFixture() => Catalog = Family.Catalog();
    public void Dispose() { Catalog.Dispose(); Family.Dispose(); }
}

/// <summary>End to end on tiny real TorchSharp models saved as HF directories with real BPE tokenizers.</summary>
public class ProxyDecoderTests(TinyFamilyFixture fx) : IClassFixture<TinyFamilyFixture>
{
    private static readonly ProxyCombination Proxy = new("base", [new ExpertPair("expert", "anti", 1f)], 1f);
    private const string Prompt = "question: what is the answer?";
    private static readonly SamplingOptions Greedy = new() { Temperature = 0, MaxNewTokens = 12, StopAtEos = false };

    private ProxyDecoder Decoder => new(fx.Catalog);

    [Fact]
    public void ProxyOutputEqualsAHandLoopOfAppendCombineArgmax()
    {
        var result = Decoder.Generate(Proxy with { Alpha = 1.5f }, Prompt, Greedy);

        // The paper's loop, written out: expert on its chat template, base and anti-expert on the plain prompt.
        var b = fx.Catalog.Get("base"); var e = fx.Catalog.Get("expert"); var a = fx.Catalog.Get("anti");
        var template = e.Tokenizer.ChatTemplate!;
        Assert.Equal(Inference.Tokenization.ChatTemplates.ChatMlJinja, Assert.IsType<Inference.Tokenization.JinjaChatTemplate>(template).Source); // the model's own ChatML, rendered as Jinja
        int[] plain = b.Tokenizer.Encode(Prompt);
        int[] chat = e.Tokenizer.Encode(template.Render([new("user", Prompt)]), addBos: false, parseSpecialTokens: true);
        Assert.Equal(b.Tokenizer.BosTokenId, plain[0]);
        Assert.Equal(e.Tokenizer.Encode("<|im_start|>", addBos: false, parseSpecialTokens: true)[0], chat[0]);
        Assert.Equal(303, e.Model.VocabSize);
        Assert.True(b.Tokenizer.VocabSize < 300, "the models carry padding rows past the tokenizer's vocabulary");

        using var sb = b.Model.CreateSession(64); using var se = e.Model.CreateSession(64); using var sa = a.Model.CreateSession(64);
        float[] lb = new float[300], le = new float[303], la = new float[300];
        sb.Append(plain, lb); se.Append(chat, le); sa.Append(plain, la);
        var tokens = new List<int>();
        for (int step = 0; step < 12; step++)
        {
            float[] combined = new float[300]; // expert truncated to the base's 300
            for (int j = 0; j < 300; j++) combined[j] = lb[j] + 1.5f * (1f * (le[j] - la[j]));
            // Argmax over the ids the tokenizer has (290; rows 290..299 are padding rows without text).
            int next = 0;
            for (int j = 1; j < b.Tokenizer.VocabSize; j++) if (combined[j] > combined[next]) next = j;
            tokens.Add(next);
            sb.Append([next], lb); se.Append([next], le); sa.Append([next], la);
        }
        Assert.Equal(tokens, result.TokenIds);
        Assert.Equal(FinishReason.Length, result.FinishReason);
        Assert.Equal(plain.Length, result.PromptTokens);
        Assert.Equal(12, result.CompletionTokens);
        Assert.Equal(b.Tokenizer.Decode(tokens.ToArray()), result.Text);
    }

    [Fact]
    public void AlphaZeroEqualsBaseOnly()
    {
        var baseOnly = Decoder.Generate(ProxyCombination.BaseOnly("base"), Prompt, Greedy);
        var alphaZero = Decoder.Generate(Proxy with { Alpha = 0f }, Prompt, Greedy);
        var proxy = Decoder.Generate(Proxy, Prompt, Greedy);
        Assert.Equal(baseOnly.TokenIds, alphaZero.TokenIds);
        Assert.Equal(baseOnly.Text, alphaZero.Text);
        Assert.NotEqual(baseOnly.TokenIds, proxy.TokenIds); // the steering changes something, or this test proves nothing
    }

    [Fact]
    public void SeededSamplingRepeatsAndResumesFromAHistory()
    {
        var options = new SamplingOptions { Temperature = 1.2f, TopK = 40, TopP = 0.95f, Seed = 77, MaxNewTokens = 10, StopAtEos = false };
        var first = Decoder.Generate(Proxy, Prompt, options);
        var again = Decoder.Generate(Proxy, Prompt, options);
        Assert.Equal(first.TokenIds, again.TokenIds);
        Assert.Equal(77UL, first.Seed);

        var resumed = Decoder.Generate(Proxy, ProxyPrompt.FromText(Prompt), options with { Seed = null },
            new DecodeOptions { Resume = new GenerationCheckpoint(77, first.TokenIds[..4]) });
        Assert.Equal(first.TokenIds, resumed.TokenIds);
        Assert.Equal(first.Text, resumed.Text);
    }

    [Fact]
    public void StreamsTokensWithAnalysisAndCancels()
    {
        var generation = Decoder.Start(Proxy, ProxyPrompt.FromText(Prompt), Greedy, new DecodeOptions { AnalysisTopK = 5 });
        using var cts = new CancellationTokenSource();
        var seen = new List<DecodedToken>();
        foreach (var token in generation.Steps(cts.Token))
        {
            seen.Add(token);
            if (token.Analysis is { } analysis)
            {
                Assert.Equal(["base", "expert", "anti-expert"], analysis.Models.Select(m => m.Role));
                Assert.All(analysis.Models, m => Assert.Equal(5, m.Top.Length));
                // Greedy picks the combination's top token among those with text (padding rows are never picked).
                int vocab = fx.Catalog.Get("base").Tokenizer.VocabSize;
                Assert.Equal(token.TokenId, analysis.Combined.First(t => t.Id < vocab).Id);
            }
            if (seen.Count == 3) cts.Cancel();
        }
        Assert.Equal(4, seen.Count);
        Assert.Equal(FinishReason.Cancelled, seen[^1].Finish);
        Assert.Equal(FinishReason.Cancelled, generation.FinishReason);
        Assert.Equal(3, generation.CompletionTokens);
        Assert.Equal(generation.State.Text, string.Concat(seen.Select(t => t.TextDelta)));
    }

    [Fact]
    public void BatchedGenerationsEqualSingleOnes()
    {
        ProxyPrompt[] prompts = [.. new[] { Prompt, "the cat", "a bird sang in the", "answer: the" }.Select(ProxyPrompt.FromText)];
        var options = Greedy with { MaxNewTokens = 8, Stop = ["e."] };
        var batched = Decoder.GenerateBatch(Proxy, prompts, options, maxBatch: 3); // a batch of 3, then one of 1
        Assert.Equal(4, batched.Length);
        for (int i = 0; i < prompts.Length; i++)
        {
            var single = Decoder.Generate(Proxy, prompts[i], options);
            Assert.Equal(single.TokenIds, batched[i].TokenIds);
            Assert.Equal(single.Text, batched[i].Text);
            Assert.Equal(single.FinishReason, batched[i].FinishReason);
        }
        var sampled = options with { Temperature = 1, Seed = 9 };
        Assert.Equal(Decoder.Generate(Proxy, prompts[2], sampled).TokenIds, Decoder.GenerateBatch(Proxy, prompts, sampled)[2].TokenIds);
    }

    [Fact]
    public void FullContextWindowEndsWithLength()
    {
        // "short" holds 24 positions; the prompt takes some, so generation ends before MaxNewTokens.
        var result = Decoder.Generate(ProxyCombination.BaseOnly("short"), Prompt, Greedy with { MaxNewTokens = 100 });
        Assert.Equal(FinishReason.Length, result.FinishReason);
        Assert.Equal(24, result.PromptTokens + result.CompletionTokens);
    }

    [Fact]
    public void PromptLongerThanTheContextIsRefused()
    {
        var ex = Assert.Throws<ContextLengthExceededException>(() =>
            Decoder.Generate(ProxyCombination.BaseOnly("short"), string.Concat(Enumerable.Repeat("the cat sat. ", 20)), Greedy).TokenIds.ToArray());
        Assert.Contains("short", ex.Message);
    }

    [Fact]
    public void VocabularyMismatchIsRefusedNamingBothModels()
    {
        var ex = Assert.Throws<InvalidOperationException>(() =>
            Decoder.Start(new ProxyCombination("base", [new ExpertPair("expert", "stranger")]), ProxyPrompt.FromText(Prompt), Greedy));
        Assert.Contains("'base'", ex.Message);
        Assert.Contains("'stranger'", ex.Message);
        Assert.Contains("vocabulary", ex.Message);
    }

    [Fact]
    public void UnknownModelListsKnownOnes()
    {
        var ex = Assert.Throws<KeyNotFoundException>(() => Decoder.Start(ProxyCombination.BaseOnly("base-huge"), ProxyPrompt.FromText(Prompt), Greedy));
        Assert.Contains("base-huge", ex.Message);
        Assert.Contains("anti, base, expert", ex.Message);
    }

    [Fact]
    public void BadAlphaIsRefused()
    {
        var ex = Assert.Throws<ArgumentException>(() => Decoder.Start(Proxy with { Alpha = float.NaN }, ProxyPrompt.FromText(Prompt), Greedy));
        Assert.Contains("Alpha", ex.Message);
    }
}
