using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Models;
using Xunit;

namespace ProxyOrleans.Inference.Tests.Decoding;

/// <summary>
/// Log-probabilities (OpenAI's logprobs and echo) on tiny real models, against hand loops that append token by token
/// and take the log-softmax of base + alpha·(expert − anti) over the tokenizer's ids themselves.
/// </summary>
public class TokenLogprobsTests(TinyFamilyFixture fx) : IClassFixture<TinyFamilyFixture>
{
    private static readonly ProxyCombination Proxy = new("base", [new ExpertPair("expert", "anti", 1f)], 1.5f);
    private const string Prompt = "question: what is the answer?";

    private ProxyDecoder Decoder => new(fx.Catalog);

    /// <summary>The log-softmax the tests expect, written out: over the first <paramref name="ids"/> logits, in double.</summary>
    private static double[] LogSoftmax(float[] logits, int ids)
    {
        double max = logits.Take(ids).Max();
        double logSum = max + Math.Log(logits.Take(ids).Sum(x => Math.Exp(x - max)));
        return [.. logits.Take(ids).Select(x => x - logSum)];
    }

    private static float[] Combined(float[] b, float[] e, float[] a) =>
        [.. Enumerable.Range(0, b.Length).Select(j => b[j] + 1.5f * (1f * (e[j] - a[j])))];

    [Theory]
    [InlineData(0f)]
    [InlineData(0.8f)]
    public void Each_generated_token_is_scored_by_the_combined_logits_before_temperature(float temperature)
    {
        var options = new SamplingOptions { Temperature = temperature, Seed = 5, MaxNewTokens = 6, StopAtEos = false };
        var result = Decoder.Generate(Proxy, ProxyPrompt.FromText(Prompt), options, new DecodeOptions { Logprobs = 3 });
        Assert.Equal(result.TokenIds.Length, result.Logprobs!.Count);
        Assert.Null(result.PromptLogprobs);

        var b = fx.Catalog.Get("base"); var e = fx.Catalog.Get("expert"); var a = fx.Catalog.Get("anti");
        int ids = b.Tokenizer.VocabSize;
        int[] plain = ProxyPrompt.FromText(Prompt).PlainTokens(b.Tokenizer), chat = ProxyPrompt.FromText(Prompt).ExpertTokens(e.Tokenizer);
        using var sb = b.Model.CreateSession(64); using var se = e.Model.CreateSession(64); using var sa = a.Model.CreateSession(64);
        float[] lb = new float[300], le = new float[303], la = new float[300];
        sb.Append(plain, lb); se.Append(chat, le); sa.Append(plain, la);
        for (int step = 0; step < result.TokenIds.Length; step++)
        {
            var expected = LogSoftmax(Combined(lb, le, la), ids);
            var got = result.Logprobs[step];
            int token = result.TokenIds[step];
            Assert.Equal(token, got.TokenId);
            Assert.Equal(expected[token], got.Logprob, 1e-5);
            // The top 3, highest first, as the expected distribution ranks them.
            var top = expected.Select((lp, id) => (lp, id)).OrderByDescending(x => x.lp).Take(3).ToArray();
            Assert.Equal(top.Select(x => x.id), got.Top.Select(c => c.TokenId));
            for (int k = 0; k < 3; k++) Assert.Equal(top[k].lp, got.Top[k].Logprob, 1e-5);
            sb.Append([token], lb); se.Append([token], le); sa.Append([token], la);
        }
    }

    [Fact]
    public void Echo_with_max_tokens_0_scores_every_prompt_token_as_the_models_read_it_token_by_token()
    {
        var options = new SamplingOptions { Temperature = 0, MaxNewTokens = 0 };
        var result = Decoder.Generate(Proxy, ProxyPrompt.FromText(Prompt), options, new DecodeOptions { PromptLogprobs = 2 });
        Assert.Empty(result.TokenIds);
        Assert.Equal(FinishReason.Length, result.FinishReason);

        // Every model reads the prompt as sent (the expert too: no chat template), one token at a time.
        var b = fx.Catalog.Get("base"); var e = fx.Catalog.Get("expert"); var a = fx.Catalog.Get("anti");
        int[] ids = b.Tokenizer.Encode(Prompt);
        var scored = result.PromptLogprobs!;
        Assert.Equal(ids.Length, scored.Length);
        Assert.Null(scored[0]);
        using var sb = b.Model.CreateSession(64); using var se = e.Model.CreateSession(64); using var sa = a.Model.CreateSession(64);
        float[] lb = new float[300], le = new float[303], la = new float[300];
        for (int t = 0; t + 1 < ids.Length; t++)
        {
            sb.Append([ids[t]], lb); se.Append([ids[t]], le); sa.Append([ids[t]], la);
            var expected = LogSoftmax(Combined(lb, le, la), b.Tokenizer.VocabSize);
            Assert.Equal(ids[t + 1], scored[t + 1]!.TokenId);
            Assert.Equal(expected[ids[t + 1]], scored[t + 1]!.Logprob, 1e-5);
            Assert.Equal(2, scored[t + 1]!.Top.Length);
        }
    }

    [Fact]
    public void Echo_then_generation_gives_the_tokens_and_scores_of_a_plain_run_on_the_same_prompt()
    {
        var options = new SamplingOptions { Temperature = 0, MaxNewTokens = 5, StopAtEos = false };
        var prompt = ProxyPrompt.FromText(Prompt).AsSent();
        var plain = Decoder.Generate(Proxy, prompt, options, new DecodeOptions { Logprobs = 1 });
        var echoed = Decoder.Generate(Proxy, prompt, options, new DecodeOptions { Logprobs = 1, PromptLogprobs = 1 });
        Assert.Equal(plain.TokenIds, echoed.TokenIds);
        // The prefill's last row is the first step's logits: the same bits scored at every position or at the last only.
        Assert.Equal(plain.Logprobs!.Select(l => l.Logprob), echoed.Logprobs!.Select(l => l.Logprob));
    }

    [Fact]
    public void Out_of_range_top_counts_are_refused_naming_the_option()
    {
        var options = new SamplingOptions { MaxNewTokens = 1 };
        var error = Assert.Throws<ArgumentException>(() => Decoder.Start(Proxy, ProxyPrompt.FromText(Prompt), options, new DecodeOptions { Logprobs = 21 }));
        Assert.Contains("Logprobs must be 0..20", error.Message);
    }
}

/// <summary>The model interface's opt-in: logits at every appended position, for scoring a prompt.</summary>
public class EveryPositionLogitsTests
{
    [Theory]
    [InlineData(true, 40)]
    [InlineData(true, 300)]   // longer than one RowForward chunk (256 rows): scored piece by piece
    [InlineData(false, 40)]
    public void Rows_equal_the_logits_of_appending_token_by_token(bool batchInvariant, int length)
    {
        var config = TinyHfModels.Tiny(maxPos: 512);
        using var model = LlamaInferenceModel.Load(TinyHfModels.SaveInNewDir(config, "every-position"), new InferenceOptions { BatchInvariant = batchInvariant });
        var rng = new Random(3);
        int[] ids = [.. Enumerable.Range(0, length).Select(_ => rng.Next(config.VocabSize))];
        int v = config.VocabSize;

        var rows = new float[length * v];
        using (var scoring = model.CreateSession(length)) scoring.AppendScoringEveryPosition(ids, rows);
        var last = new float[v];
        using (var prefill = model.CreateSession(length)) prefill.Append(ids, last);

        using var stepwise = model.CreateSession(length);
        var row = new float[v];
        for (int t = 0; t < length; t++)
        {
            stepwise.Append([ids[t]], row);
            var scored = rows.AsSpan(t * v, v);
            if (batchInvariant) Assert.True(scored.SequenceEqual(row), $"position {t} differs from the token-by-token logits");
            else for (int j = 0; j < v; j++) Assert.Equal(row[j], scored[j], 1e-3f);
        }
        if (batchInvariant) Assert.True(rows.AsSpan((length - 1) * v, v).SequenceEqual(last), "the last row differs from a plain prefill");
    }
}
