using System.Net;
using System.Text.Json;
using ProxyOrleans.Inference.Decoding;

namespace ProxyOrleans.Gateway.Tests;

/// <summary>
/// Completions' token-id prompts (OpenAI's <c>"prompt": [ids]</c> and <c>[[ids], [ids]]</c>, what lm-evaluation-harness's
/// local-completions sends by default): the ids the base's /tokenize gives for a text generate and score exactly as the
/// text does, through the cluster and through the single-process decoder alike; bad ids are 400s naming the field.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class TokenIdPromptTests(GatewayFixture fx)
{
    async Task<(HttpStatusCode Status, JsonElement Body)> SendAsync(string path, object body)
    {
        using var r = await fx.Http.SendAsync(Http.Post(path, JsonSerializer.Serialize(body), GatewayFixture.AliceKey));
        return (r.StatusCode, JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.Clone());
    }

    async Task<JsonElement> PostOkAsync(string path, object body)
    {
        var (status, json) = await SendAsync(path, body);
        Assert.True(status == HttpStatusCode.OK, json.GetRawText());
        return json;
    }

    /// <summary>The ids the gateway's /tokenize gives for <paramref name="text"/> on <paramref name="model"/> (BOS included).</summary>
    async Task<int[]> TokenizeAsync(string model, string text) =>
        [.. (await PostOkAsync("/tokenize", new { model, prompt = text })).GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32())];

    static string[] Texts(JsonElement completion) =>
        [.. completion.GetProperty("choices").EnumerateArray().OrderBy(c => c.GetProperty("index").GetInt32()).Select(c => c.GetProperty("text").GetString()!)];

    [Fact]
    public async Task A_token_id_prompt_generates_what_its_text_generates_on_the_cluster_and_in_the_single_process_decoder()
    {
        const string text = "The old lighthouse keeper";
        var ids = await TokenizeAsync(fx.BaseModel, text);
        var fromText = await PostOkAsync("/v1/completions", new { model = fx.Combination, prompt = text, max_tokens = 6, temperature = 0 });
        var fromIds = await PostOkAsync("/v1/completions", new { model = fx.Combination, prompt = ids, max_tokens = 6, temperature = 0 });

        Assert.Equal(Texts(fromText), Texts(fromIds));
        Assert.Equal(ids.Length, fromIds.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        // The expert (ChatML template) reads the ids decoded inside its template; the base and anti-expert the ids as sent.
        var direct = fx.DirectGeneration(fx.CombinationSpec, ProxyPrompt.FromTokenIds(ids), 6);
        Assert.Equal(direct.Text, Texts(fromIds)[0]);
        Assert.Equal(ids.Length, direct.PromptTokens);

        // A plain model reads them the same way.
        object Plain(object prompt) => new { model = fx.BaseModel, prompt, max_tokens = 6, temperature = 0 };
        Assert.Equal(Texts(await PostOkAsync("/v1/completions", Plain(text))), Texts(await PostOkAsync("/v1/completions", Plain(ids))));
    }

    [Fact]
    public async Task A_batch_of_token_id_prompts_gives_one_choice_per_prompt_and_n_prompt_major_in_index_order()
    {
        string[] texts = ["Once upon a time", "In the valley"];
        int[][] ids = [await TokenizeAsync(fx.BaseModel, texts[0]), await TokenizeAsync(fx.BaseModel, texts[1])];
        // Sampled with a seed: the two choices of a prompt differ (seed + j) and still repeat exactly.
        var batch = await PostOkAsync("/v1/completions", new { model = fx.Combination, prompt = ids, n = 2, max_tokens = 5, temperature = 1.0, seed = 7 });
        var batchTexts = Texts(batch);
        Assert.Equal(4, batchTexts.Length);
        var asText = Texts(await PostOkAsync("/v1/completions", new { model = fx.Combination, prompt = texts, n = 2, max_tokens = 5, temperature = 1.0, seed = 7 }));
        Assert.Equal(asText, batchTexts);
        for (var p = 0; p < ids.Length; p++)
        {
            var alone = Texts(await PostOkAsync("/v1/completions", new { model = fx.Combination, prompt = ids[p], n = 2, max_tokens = 5, temperature = 1.0, seed = 7 }));
            Assert.Equal(alone, batchTexts[(2 * p)..(2 * p + 2)]);
        }
        // Usage counts each prompt once.
        Assert.Equal(ids.Sum(i => i.Length), batch.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Theory]
    [InlineData("[-1, 5]", "prompt", "token id")]
    [InlineData("[1, 2.5]", "prompt", "token id")]
    [InlineData("[1, 99999999]", "prompt", "outside the vocabulary")]
    [InlineData("[[1, 2], [1, 99999999]]", "prompt", "outside the vocabulary")]
    [InlineData("[[1, 2], []]", "prompt", "at least one id")]
    [InlineData("[[1, 2], \"text\", 3]", "prompt", "list of lists of token ids")]
    [InlineData("[1, \"two\"]", "prompt", "token id")]
    [InlineData("[[1, [2]]]", "prompt", "token id")]
    public async Task Bad_token_ids_are_a_400_naming_prompt(string prompt, string param, string says)
    {
        using var r = await fx.Http.SendAsync(Http.Post("/v1/completions",
            $"{{\"model\": \"{fx.Combination}\", \"prompt\": {prompt}, \"max_tokens\": 2}}", GatewayFixture.AliceKey));
        var json = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement;
        Assert.True(r.StatusCode == HttpStatusCode.BadRequest, json.GetRawText());
        Assert.Equal(param, json.GetProperty("error").GetProperty("param").GetString());
        Assert.Contains(says, json.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task An_answer_cue_cannot_wrap_token_ids_and_the_bare_cue_reads_them_as_given()
    {
        var ids = await TokenizeAsync(fx.BaseModel, "Where does the river begin?");
        var (status, json) = await SendAsync("/v1/completions", new { model = fx.CuedCombination, prompt = ids, max_tokens = 3, temperature = 0 });
        Assert.True(status == HttpStatusCode.BadRequest, json.GetRawText());
        Assert.Equal("proxy.answer_cue", json.GetProperty("error").GetProperty("param").GetString());
        Assert.Contains("{prompt}", json.GetProperty("error").GetProperty("message").GetString());

        var bare = await PostOkAsync("/v1/completions",
            new { model = fx.CuedCombination, prompt = ids, max_tokens = 3, temperature = 0, proxy = new { answer_cue = "{prompt}" } });
        var expected = fx.DirectGeneration(fx.CombinationSpec with { ExpertResponsePrefix = GatewayFixture.ResponsePrefix }, ProxyPrompt.FromTokenIds(ids), 3);
        Assert.Equal(expected.Text, Texts(bare)[0]);
        // Echo with logprobs reads every prompt as sent: the configured cue is set aside, as for text.
        await PostOkAsync("/v1/completions", new { model = fx.CuedCombination, prompt = ids, max_tokens = 0, logprobs = 0, echo = true });
    }

    [Fact]
    public async Task Echo_scores_of_token_ids_equal_the_texts_and_the_single_process_decoders_bit_for_bit()
    {
        const string text = "The old lighthouse keeper";
        var ids = await TokenizeAsync(fx.BaseModel, text);
        object Body(object prompt) => new { model = fx.Combination, prompt, max_tokens = 2, temperature = 0, logprobs = 2, echo = true };
        var fromText = (await PostOkAsync("/v1/completions", Body(text))).GetProperty("choices")[0];
        var fromIds = (await PostOkAsync("/v1/completions", Body(ids))).GetProperty("choices")[0];

        Assert.Equal(fromText.GetProperty("logprobs").GetRawText(), fromIds.GetProperty("logprobs").GetRawText());
        // The echoed text is the ids decoded by the base, special tokens kept (the BOS shows).
        var detokenized = (await PostOkAsync("/detokenize", new { model = fx.BaseModel, tokens = ids })).GetProperty("prompt").GetString()!;
        Assert.StartsWith(detokenized, fromIds.GetProperty("text").GetString());
        Assert.EndsWith(text, detokenized);

        // Streamed, the prompt goes first as a chunk of its own: the same decoded text and the prompt's scores.
        using (var r = await fx.Http.SendAsync(Http.Post("/v1/completions", JsonSerializer.Serialize(new
               { model = fx.Combination, prompt = ids, max_tokens = 2, temperature = 0, logprobs = 2, echo = true, stream = true }), GatewayFixture.AliceKey),
               HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.True(r.IsSuccessStatusCode, await r.Content.ReadAsStringAsync());
            var first = JsonDocument.Parse((await Http.ReadEventsAsync(r))[0]).RootElement.GetProperty("choices")[0];
            Assert.Equal(detokenized, first.GetProperty("text").GetString());
            Assert.Equal(ids.Length, first.GetProperty("logprobs").GetProperty("tokens").GetArrayLength());
        }

        var direct = fx.DirectGeneration(fx.CombinationSpec, ProxyPrompt.FromTokenIds(ids), 2, new DecodeOptions { Logprobs = 2, PromptLogprobs = 2 });
        var scores = fromIds.GetProperty("logprobs").GetProperty("token_logprobs").EnumerateArray().ToArray();
        Assert.Equal(ids.Length + 2, scores.Length);
        for (var t = 1; t < ids.Length; t++) Assert.Equal(direct.PromptLogprobs![t]!.Logprob, scores[t].GetSingle());
        for (var t = 0; t < 2; t++) Assert.Equal(direct.Logprobs![t].Logprob, scores[ids.Length + t].GetSingle());
    }

    [Fact]
    public async Task A_two_choice_question_sent_as_token_ids_scores_as_its_text_and_picks_the_right_answer()
    {
        // lm-evaluation-harness's multiple choice with tokenized requests: context + answer as ids, echo, max_tokens 0.
        const string context = "Jonas Larsen lives in";
        string[] answers = [" Porto.", " Lisbon."];
        var contextIds = await TokenizeAsync("base-large", context);
        var likelihoods = new List<double>();
        foreach (var answer in answers)
        {
            var ids = await TokenizeAsync("base-large", context + answer);
            object Body(object prompt) => new { model = fx.DemoCombination, prompt, max_tokens = 0, logprobs = 0, echo = true };
            var fromIds = (await PostOkAsync("/v1/completions", Body(ids))).GetProperty("choices")[0].GetProperty("logprobs");
            var fromText = (await PostOkAsync("/v1/completions", Body(context + answer))).GetProperty("choices")[0].GetProperty("logprobs");
            Assert.Equal(fromText.GetRawText(), fromIds.GetRawText());
            // The harness sums the scores of the ids past the context's (the ids it sent, so no offsets are needed).
            Assert.Equal(contextIds, ids[..contextIds.Length]);
            var scores = fromIds.GetProperty("token_logprobs").EnumerateArray().ToArray();
            likelihoods.Add(Enumerable.Range(contextIds.Length, ids.Length - contextIds.Length).Sum(t => (double)scores[t].GetSingle()));
        }
        Assert.True(likelihoods[0] > likelihoods[1], $"log-likelihood of{answers[0]} {likelihoods[0]:F3}, of{answers[1]} {likelihoods[1]:F3}");
    }
}
