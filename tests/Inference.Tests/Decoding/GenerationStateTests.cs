using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Tokenization;
using Xunit;

namespace ProxyOrleans.Inference.Tests.Decoding;

public class GenerationStateTests
{
    private static readonly ITextTokenizer Tok = Llama2Tokenizer.Instance;

    // A deterministic stand-in for "the models' combined logits given the history" (the thing under test is
    // the state machine, not a model): varied, history-dependent scores over the real 32000-token vocabulary.
    private static float[] LogitsFor(IReadOnlyList<int> history)
    {
        int last = history.Count == 0 ? 1 : history[^1];
        var rng = new Random(last * 7919 + history.Count);
        var x = new float[32000];
        for (int j = 0; j < x.Length; j++) x[j] = (float)(rng.NextDouble() * 8);
        return x;
    }

    private static (List<StepOutcome> Outcomes, GenerationState State) Run(GenerationState state)
    {
        var outcomes = new List<StepOutcome>();
        while (!state.IsFinished) outcomes.Add(state.Advance(LogitsFor(state.GeneratedTokens)));
        return (outcomes, state);
    }

    /// <summary>Feeds the tokens of <paramref name="completion"/> (as they follow the prompt) one by one.</summary>
    private static (List<StepOutcome> Outcomes, GenerationState State) Feed(string prompt, string completion, SamplingOptions options)
    {
        int[] promptIds = Tok.Encode(prompt);
        int[] all = Tok.Encode(prompt + completion);
        Assert.Equal(promptIds, all[..promptIds.Length]); // the completion starts on a token boundary
        var state = new GenerationState(Tok, options, promptIds);
        var outcomes = new List<StepOutcome>();
        foreach (int id in all[promptIds.Length..])
        {
            if (state.IsFinished) break;
            outcomes.Add(state.Accept(id));
            // Whatever was released so far must be a prefix of the final text: nothing is ever taken back.
            Assert.StartsWith(state.Text, completion, StringComparison.Ordinal);
            // Before the end, released text never ends with the beginning of a stop sequence.
            if (!state.IsFinished)
                foreach (string stop in options.Stop)
                    for (int len = 1; len < stop.Length; len++)
                        Assert.False(state.Text.EndsWith(stop[..len], StringComparison.Ordinal), $"released a possible stop prefix: '{state.Text}'");
        }
        return (outcomes, state);
    }

    [Fact]
    public void DeltasRebuildTheTextWithItsLeadingSpace()
    {
        var (outcomes, state) = Feed("The capital of France is", " Paris, a city of 2 million people.",
            new SamplingOptions { MaxNewTokens = 100 });
        Assert.Equal(" Paris, a city of 2 million people.", string.Concat(outcomes.Select(o => o.TextDelta)));
        Assert.Equal(" Paris", outcomes[0].TextDelta);
        Assert.False(state.IsFinished);
    }

    [Fact]
    public void StopSequenceSplitAcrossTokensCutsTheTextAndIsNeverEmitted()
    {
        const string stop = "\nQuestion:";
        var (outcomes, state) = Feed("Q: 6*7?\nA:", " The answer is 42.\nQuestion: what else?",
            new SamplingOptions { Stop = [stop], MaxNewTokens = 100 });
        Assert.Equal(FinishReason.Stop, state.FinishReason);
        Assert.Equal(FinishReason.Stop, outcomes[^1].Finish);
        Assert.Equal(" The answer is 42.", string.Concat(outcomes.Select(o => o.TextDelta)));
        Assert.Equal(" The answer is 42.", state.Text);
        Assert.True(Tok.Encode(stop, addBos: false).Length > 1, "the stop sequence spans several tokens");
        Assert.DoesNotContain(outcomes, o => o.TextDelta.Contains('\n'));
    }

    [Fact]
    public void PossibleStopPrefixIsHeldBackThenReleased()
    {
        // "Quest" could start "Question:"; it is held until " for" shows it is not.
        var (outcomes, state) = Feed("They went on", " the Quest for gold", new SamplingOptions { Stop = ["Question:"], MaxNewTokens = 100 });
        Assert.Equal(FinishReason.None, state.FinishReason);
        Assert.Equal(" the Quest for gold", string.Concat(outcomes.Select(o => o.TextDelta)));
        // Some step released nothing (its text was held), and a later one released it together with more.
        Assert.Contains(outcomes, o => o.TextDelta.Length == 0);
        Assert.Contains(outcomes, o => o.TextDelta.StartsWith("Quest for", StringComparison.Ordinal));
    }

    [Fact]
    public void HeldBackTextIsReleasedWhenMaxTokensEnds()
    {
        string completion = " we ask one Quest";
        int n = Tok.Encode("Then" + completion).Length - Tok.Encode("Then").Length;
        var (outcomes, state) = Feed("Then", completion, new SamplingOptions { Stop = ["Question"], MaxNewTokens = n });
        Assert.Equal(FinishReason.Length, state.FinishReason);
        Assert.Equal(n, state.GeneratedTokens.Count);
        Assert.Equal(completion, string.Concat(outcomes.Select(o => o.TextDelta)));
    }

    [Fact]
    public void MaxNewTokensStopsTheRun()
    {
        var (outcomes, state) = Run(new GenerationState(Tok, new SamplingOptions { Temperature = 1, Seed = 5, MaxNewTokens = 7, StopAtEos = false }, Tok.Encode("Hi")));
        Assert.Equal(7, outcomes.Count);
        Assert.Equal(FinishReason.Length, state.FinishReason);
        Assert.All(outcomes[..^1], o => Assert.Equal(FinishReason.None, o.Finish));
        Assert.Throws<InvalidOperationException>(() => state.Advance(LogitsFor(state.GeneratedTokens)));
    }

    [Fact]
    public void ContextRoomEndsTheRunLikeMaxTokens()
    {
        var options = new SamplingOptions { Temperature = 1, Seed = 5, MaxNewTokens = 50, StopAtEos = false };
        var (outcomes, state) = Run(new GenerationState(Tok, options, Tok.Encode("Hi"), contextRoom: 5));
        Assert.Equal(5, outcomes.Count);
        Assert.Equal(FinishReason.Length, state.FinishReason);
        Assert.Throws<ProxyOrleans.Inference.Models.ContextLengthExceededException>(() => new GenerationState(Tok, options, Tok.Encode("Hi"), contextRoom: 0));
    }

    [Fact]
    public void EosEndsTheRunUnlessDisabled()
    {
        var options = new SamplingOptions { MaxNewTokens = 10 };
        var state = new GenerationState(Tok, options, Tok.Encode("Hello"));
        Assert.Equal(" world", state.Accept(Tok.Encode("Hello world")[^1]).TextDelta);
        var end = state.Accept(2);
        Assert.Equal(FinishReason.Eos, end.Finish);
        Assert.Equal("", end.TextDelta);
        Assert.Equal(" world", state.Text);

        var keepGoing = new GenerationState(Tok, options with { StopAtEos = false }, Tok.Encode("Hello"));
        Assert.Equal(FinishReason.None, keepGoing.Accept(2).Finish);
    }

    [Fact]
    public void SeededRunRepeatsAndResumesExactly()
    {
        var options = new SamplingOptions { Temperature = 0.9f, TopK = 50, TopP = 0.95f, Seed = 2024, MaxNewTokens = 24, StopAtEos = false };
        int[] prompt = Tok.Encode("Once upon a time");
        var (first, a) = Run(new GenerationState(Tok, options, prompt));
        var (second, _) = Run(new GenerationState(Tok, options, prompt));
        Assert.Equal(first, second);

        foreach (int k in new[] { 1, 9, 23 })
        {
            var resumed = GenerationState.Resume(Tok, options with { Seed = null }, new GenerationCheckpoint(2024, [.. a.GeneratedTokens.Take(k)]), prompt);
            Assert.Equal(k, resumed.Step);
            Assert.Equal(string.Concat(first.Take(k).Select(o => o.TextDelta)), resumed.Text);
            var (rest, r) = Run(resumed);
            Assert.Equal(first.Skip(k), rest);
            Assert.Equal(a.Text, r.Text);
        }

        var (other, _) = Run(new GenerationState(Tok, options with { Seed = 2025 }, prompt));
        Assert.NotEqual(first.Select(o => o.TokenId), other.Select(o => o.TokenId));
    }

    [Fact]
    public void WithoutSeedARandomSeedIsChosenAndReported()
    {
        var options = new SamplingOptions { Temperature = 1, MaxNewTokens = 12, StopAtEos = false };
        var (first, a) = Run(new GenerationState(Tok, options, Tok.Encode("Hi")));
        var b = new GenerationState(Tok, options, Tok.Encode("Hi"));
        Assert.NotEqual(a.Seed, b.Seed);
        var (again, _) = Run(new GenerationState(Tok, options with { Seed = a.Seed }, Tok.Encode("Hi")));
        Assert.Equal(first, again);
    }

    [Fact]
    public void IncompleteUtf8IsHeldBack()
    {
        // "€" is three byte-fallback tokens in Llama 2's vocabulary (<0xE2> <0x82> <0xAC>) unless it has a piece.
        var (outcomes, state) = Feed("Price:", " 5€ today", new SamplingOptions { MaxNewTokens = 100 });
        Assert.Equal(" 5€ today", string.Concat(outcomes.Select(o => o.TextDelta)));
        Assert.DoesNotContain(outcomes, o => o.TextDelta.Contains('\uFFFD'));
        Assert.Equal(" 5€ today", state.Text);
    }
}
