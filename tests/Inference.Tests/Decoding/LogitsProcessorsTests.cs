using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Tokenization;
using Xunit;

namespace ProxyOrleans.Inference.Tests.Decoding;

/// <summary>Each logits processor's semantics on hand-made logits, and their order (vLLM's).</summary>
public class LogitsProcessorsTests
{
    private static readonly ITextTokenizer Tok = Llama2Tokenizer.Instance;

    private static float[] Processed(float[] logits, SamplingOptions options, int[]? prompt = null, int[]? output = null)
    {
        var processors = new LogitsProcessors(options, prompt ?? []);
        foreach (int t in output ?? []) processors.Accept(t);
        var x = (float[])logits.Clone();
        processors.Apply(x);
        return x;
    }

    [Fact]
    public void LogitBiasAddsToTheNamedIdsOnly()
    {
        var options = new SamplingOptions { LogitBias = new Dictionary<int, float> { [0] = 10f, [3] = -100f } };
        Assert.Equal([11f, 2f, 3f, -96f], Processed([1f, 2f, 3f, 4f], options));
    }

    [Fact]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOfPromptAndOutputTokensOnce()
    {
        // Prompt holds 0 (twice) and 2; the output holds 1 (twice) and 2 again; 3 and 4 were never seen.
        var options = new SamplingOptions { RepetitionPenalty = 2f };
        var got = Processed([4f, 4f, -3f, 4f, -3f], options, prompt: [0, 2, 0], output: [1, 2, 1]);
        Assert.Equal([2f, 2f, -6f, 4f, -3f], got);
    }

    [Fact]
    public void FrequencyPenaltyScalesWithTheOutputCountAndPresencePenaltyIsPaidOnceBothOnlyForOutputTokens()
    {
        var options = new SamplingOptions { FrequencyPenalty = 0.5f, PresencePenalty = 0.25f };
        // Token 3 is only in the prompt: OpenAI's penalties look at the completion alone.
        var got = Processed([0f, 0f, 0f, 0f], options, prompt: [3], output: [1, 1, 2]);
        Assert.Equal([0f, -1.25f, -0.75f, 0f], got);
        // Negative values encourage repetition.
        Assert.Equal([0f, 1.25f, 0.75f, 0f], Processed([0f, 0f, 0f, 0f], options with { FrequencyPenalty = -0.5f, PresencePenalty = -0.25f }, output: [1, 1, 2]));
    }

    [Fact]
    public void BiasComesBeforeTheRepetitionPenalty()
    {
        // -1 + 4 = 3, then positive: 3 / 2 = 1.5. The other order (penalty first) would give -1·2 + 4 = 2.
        var options = new SamplingOptions { LogitBias = new Dictionary<int, float> { [0] = 4f }, RepetitionPenalty = 2f };
        Assert.Equal([1.5f], Processed([-1f], options, output: [0]));
    }

    [Fact]
    public void MinPKeepsTokensAtLeastMinPTimesTheMostLikelyAfterTemperature()
    {
        // Probability ratios to the best: e^-1 = 0.37, e^-3 = 0.050, e^-2.3 = 0.100.
        float[] logits = [0f, -1f, -3f, -2.3f];
        var options = new SamplingOptions { Temperature = 1f, MinP = 0.1f };
        Assert.Equal([0, 1, 3], Kept(logits, options));
        // At temperature 2 the ratios are e^-0.5, e^-1.5 = 0.22, e^-1.15 = 0.32: all kept (min-p before temperature drops token 2).
        Assert.Equal([0, 1, 2, 3], Kept(logits, options with { Temperature = 2f }));
        // Min-p 1 keeps only the most likely token(s).
        Assert.Equal([0], Kept(logits, options with { MinP = 1f }));
    }

    [Fact]
    public void MinPComesBeforeTopP()
    {
        // p ∝ [1, e^-1, e^-3, e^-2.3] = [0.66, 0.24, 0.03, 0.07]. Min-p 0.3 leaves {0, 1}, where p(0) = 1/(1 + e^-1) = 0.73,
        // so top-p 0.7 then keeps token 0 alone; top-p first (0.66 < 0.7) would keep {0, 1}, and min-p after it both.
        float[] logits = [0f, -1f, -3f, -2.3f];
        Assert.Equal([0], Kept(logits, new SamplingOptions { Temperature = 1f, MinP = 0.3f, TopP = 0.7f }));
        Assert.Equal([0, 1], Kept(logits, new SamplingOptions { Temperature = 1f, TopP = 0.7f }));
    }

    [Fact]
    public void GreedyDecodingTakesTheArgmaxAfterBiasAndPenalties()
    {
        var logits = new float[Tok.VocabSize];
        logits[500] = 5f; logits[600] = 4f; logits[700] = 3f;
        var greedy = new SamplingOptions { Temperature = 0, MaxNewTokens = 8, StopAtEos = false };
        Assert.Equal(500, new GenerationState(Tok, greedy).Choose(logits));
        Assert.Equal(600, new GenerationState(Tok, greedy with { LogitBias = new Dictionary<int, float> { [500] = -100f } }).Choose(logits));
        // 500 is in the prompt: 5 / 2 = 2.5 < 4.
        Assert.Equal(600, new GenerationState(Tok, greedy with { RepetitionPenalty = 2f }, [1, 500]).Choose(logits));
        var penalised = new GenerationState(Tok, greedy with { FrequencyPenalty = 2f });
        penalised.Accept(500);
        Assert.Equal(600, penalised.Choose(logits));
    }

    [Fact]
    public void PenaltiesRepeatExactlyAfterAResumeFromTheCheckpoint()
    {
        // History-independent logits where four tokens dominate: with a frequency penalty the argmax cycles through them,
        // so a resume that forgot the counts would start the cycle again at token 100.
        var logits = new float[Tok.VocabSize];
        logits[100] = 10f; logits[200] = 9.5f; logits[300] = 9f; logits[400] = 8.5f;
        var options = new SamplingOptions
        {
            Temperature = 0.7f, Seed = 11, MaxNewTokens = 24, StopAtEos = false,
            FrequencyPenalty = 1f, PresencePenalty = 0.5f, RepetitionPenalty = 1.3f, MinP = 0.05f,
        };
        int[] prompt = Tok.Encode("Once upon a time");
        var whole = new GenerationState(Tok, options, prompt);
        while (!whole.IsFinished) whole.Advance(logits);
        Assert.True(whole.GeneratedTokens.Distinct().Count() >= 3, $"the penalties must move the choice: {string.Join(",", whole.GeneratedTokens)}");

        var first = new GenerationState(Tok, options, prompt);
        for (int i = 0; i < 9; i++) first.Advance(logits);
        var resumed = GenerationState.Resume(Tok, options with { Seed = null }, first.Checkpoint(), prompt);
        Assert.Equal(first.Checkpoint().GeneratedTokens.GroupBy(t => t).ToDictionary(g => g.Key, g => g.Count()),
            new Dictionary<int, int>(resumed.Processors.OutputCounts));
        while (!resumed.IsFinished) resumed.Advance(logits);
        Assert.Equal(whole.GeneratedTokens, resumed.GeneratedTokens);
    }

    [Fact]
    public void AStopTokenEndsTheGenerationWithStopAndItsTextIsNotEmitted()
    {
        int[] prompt = Tok.Encode("The city");
        int[] ids = Tok.Encode("The city of Paris is big")[prompt.Length..]; // " of", " Paris", " is", " big"
        var state = new GenerationState(Tok, new SamplingOptions { MaxNewTokens = 10, StopAtEos = false, StopTokenIds = [ids[2]] }, prompt);
        Assert.False(state.Accept(ids[0]).IsFinal);
        Assert.False(state.Accept(ids[1]).IsFinal);
        var last = state.Accept(ids[2]);
        Assert.Equal(FinishReason.Stop, last.Finish);
        Assert.Equal(" of Paris", state.Text);
        Assert.Equal(3, state.GeneratedTokens.Count); // the stop token counts as generated, as in vLLM
    }

    [Theory]
    [InlineData("frequency_penalty")]
    [InlineData("presence_penalty")]
    [InlineData("repetition_penalty")]
    [InlineData("min_p")]
    [InlineData("logit_bias")]
    [InlineData("stop_token_ids")]
    public void OutOfRangeValuesAreRefusedNamingTheField(string field)
    {
        var bad = field switch
        {
            "frequency_penalty" => new SamplingOptions { FrequencyPenalty = 2.5f },
            "presence_penalty" => new SamplingOptions { PresencePenalty = -3f },
            "repetition_penalty" => new SamplingOptions { RepetitionPenalty = 0f },
            "min_p" => new SamplingOptions { MinP = 1.5f },
            "logit_bias" => new SamplingOptions { LogitBias = new Dictionary<int, float> { [5] = 101f } },
            _ => new SamplingOptions { StopTokenIds = [-1] },
        };
        var e = Assert.ThrowsAny<ArgumentException>(() => Sampler.Validate(bad));
        Assert.Equal(field, e.ParamName);
        Assert.Contains(field, e.Message);
    }

    [Fact]
    public void TokenIdsOutsideTheVocabularyAreRefusedNamingTheField()
    {
        var bias = Assert.ThrowsAny<ArgumentException>(() =>
            new GenerationState(Tok, new SamplingOptions { LogitBias = new Dictionary<int, float> { [32000] = 1f } }));
        Assert.Equal("logit_bias", bias.ParamName);
        Assert.Contains("32000", bias.Message);
        var stop = Assert.ThrowsAny<ArgumentException>(() => new GenerationState(Tok, new SamplingOptions { StopTokenIds = [1, 99999] }));
        Assert.Equal("stop_token_ids", stop.ParamName);
    }

    private static int[] Kept(float[] logits, SamplingOptions options)
    {
        float[] scores = new float[logits.Length];
        Sampler.Warp(logits, options, scores);
        return [.. Enumerable.Range(0, logits.Length).Where(j => scores[j] != float.NegativeInfinity)];
    }
}
