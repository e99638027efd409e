using System.Text.Json;

namespace ProxyOrleans.Gateway.Tests;

/// <summary>
/// The logits processors' fields over HTTP (logit_bias, the penalties, min_p, stop_token_ids) and POST /tokenize and
/// /detokenize in vLLM's shapes, against the real cluster and the single-process decoder.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class SamplingFieldsAndTokenizeTests(GatewayFixture fx)
{
    const string Prompt = "The old lighthouse keeper";

    async Task<JsonElement> PostOk(string path, object body, string key = GatewayFixture.AliceKey)
    {
        using var response = await fx.Http.SendAsync(Http.Post(path, JsonSerializer.Serialize(body), key));
        var json = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.OK, json);
        return JsonDocument.Parse(json).RootElement.Clone();
    }

    static int[] Ids(JsonElement tokenized) => [.. tokenized.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32())];

    [Fact]
    public async Task Tokenize_gives_the_ids_a_completion_prefills_and_detokenize_gives_the_text_back()
    {
        var tokenized = await PostOk("/tokenize", new { model = fx.BaseModel, prompt = Prompt });
        var ids = Ids(tokenized);
        Assert.Equal(ids.Length, tokenized.GetProperty("count").GetInt32());
        Assert.Equal(fx.ModelContext, tokenized.GetProperty("max_model_len").GetInt32());
        Assert.False(tokenized.TryGetProperty("token_strs", out _));

        var completion = await PostOk("/v1/completions", new { model = fx.BaseModel, prompt = Prompt, max_tokens = 1, temperature = 0 });
        Assert.Equal(ids.Length, completion.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        // Under /v1 too; a combination tokenizes with its base; without special tokens the BOS goes.
        Assert.Equal(ids, Ids(await PostOk("/v1/tokenize", new { model = fx.BaseModel, prompt = Prompt })));
        Assert.Equal(ids, Ids(await PostOk("/tokenize", new { model = fx.Combination, prompt = Prompt })));
        var bare = Ids(await PostOk("/tokenize", new { model = fx.BaseModel, prompt = Prompt, add_special_tokens = false }));
        Assert.Equal(ids[1..], bare);

        var strs = await PostOk("/tokenize", new { model = fx.BaseModel, prompt = Prompt, return_token_strs = true });
        Assert.Equal("<s>", strs.GetProperty("token_strs")[0].GetString());
        Assert.Equal(ids.Length, strs.GetProperty("token_strs").GetArrayLength());

        Assert.Equal(Prompt, (await PostOk("/detokenize", new { model = fx.BaseModel, tokens = bare })).GetProperty("prompt").GetString());
        // Special tokens are kept, as Hugging Face's decode does by default.
        Assert.Equal("<s>" + Prompt, (await PostOk("/v1/detokenize", new { model = fx.BaseModel, tokens = ids })).GetProperty("prompt").GetString());
    }

    [Fact]
    public async Task Tokenize_messages_renders_the_models_chat_template_with_special_tokens_as_single_ids()
    {
        var tokenized = await PostOk("/tokenize", new
        {
            model = fx.ExpertModel, messages = new[] { new { role = "user", content = "hi" } }, return_token_strs = true,
        });
        Assert.Equal("<|im_start|>", tokenized.GetProperty("token_strs")[0].GetString());
        var text = (await PostOk("/detokenize", new { model = fx.ExpertModel, tokens = Ids(tokenized) })).GetProperty("prompt").GetString();
        Assert.Equal("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", text);

        var noPrompt = await PostOk("/tokenize", new { model = fx.ExpertModel, messages = new[] { new { role = "user", content = "hi" } }, add_generation_prompt = false });
        Assert.Equal("<|im_start|>user\nhi<|im_end|>\n",
            (await PostOk("/detokenize", new { model = fx.ExpertModel, tokens = Ids(noPrompt) })).GetProperty("prompt").GetString());
    }

    public static TheoryData<string, string, string?, string> BadTokenizeRequests => new()
    {
        // path, body, param, code
        { "/tokenize", "{\"model\": \"nope\", \"prompt\": \"hi\"}", "model", "model_not_found" },
        { "/tokenize", "{\"prompt\": \"hi\"}", "model", "missing_required_parameter" },
        { "/tokenize", "{\"model\": \"@B\"}", "prompt", "missing_required_parameter" },
        { "/tokenize", "{\"model\": \"@B\", \"prompt\": \"hi\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", "messages", "invalid_value" },
        { "/tokenize", "{\"model\": \"@B\", \"prompt\": 5}", "prompt", "invalid_type" },
        { "/tokenize", "{\"model\": \"@B\", \"prompt\": \"hi\", \"add_special_tokens\": \"yes\"}", "add_special_tokens", "invalid_type" },
        { "/tokenize", "{\"model\": \"@B\", \"prompt\": \"hi\", \"add_generation_prompt\": true}", "add_generation_prompt", "invalid_value" },
        { "/tokenize", "{\"model\": \"@B\", \"prompt\": \"hi\", \"chat_template\": \"x\"}", "chat_template", "unknown_parameter" },
        // The base has no chat template: named, with what to do.
        { "/tokenize", "{\"model\": \"@B\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", "messages", "invalid_value" },
        { "/detokenize", "{\"model\": \"@B\", \"tokens\": [1, 9999999]}", "tokens", "invalid_value" },
        { "/detokenize", "{\"model\": \"@B\", \"tokens\": [1, -1]}", "tokens", "invalid_type" },
        { "/detokenize", "{\"model\": \"@B\", \"tokens\": \"hi\"}", "tokens", "invalid_type" },
        { "/detokenize", "{\"model\": \"@B\"}", "tokens", "missing_required_parameter" },
        { "/v1/detokenize", "{\"model\": \"@B\", \"tokens\": [1], \"prompt\": \"x\"}", "prompt", "unknown_parameter" },
    };

    [Theory]
    [MemberData(nameof(BadTokenizeRequests))]
    public async Task Bad_tokenize_requests_are_400_naming_the_field(string path, string body, string? param, string code)
    {
        using var response = await fx.Http.SendAsync(Http.Post(path, body.Replace("@B", fx.BaseModel), GatewayFixture.AliceKey));
        await Http.AssertErrorAsync(response, 400, param, code);
    }

    [Fact]
    public async Task Tokenize_needs_an_api_key_allowed_the_model()
    {
        var body = JsonSerializer.Serialize(new { model = fx.Combination, prompt = "hi" });
        using var none = await fx.Http.SendAsync(Http.Post("/tokenize", body, null));
        await Http.AssertErrorAsync(none, 401, null, "invalid_api_key");
        using var carol = await fx.Http.SendAsync(Http.Post("/detokenize", JsonSerializer.Serialize(new { model = fx.Combination, tokens = new[] { 1 } }), GatewayFixture.CarolKey));
        await Http.AssertErrorAsync(carol, 403, "model", "model_not_allowed");
    }

    [Fact]
    public async Task A_bias_of_100_forces_a_token_and_a_stop_token_id_ends_the_text_before_it()
    {
        var e = Ids(await PostOk("/tokenize", new { model = fx.BaseModel, prompt = "e", add_special_tokens = false }));
        Assert.Single(e);
        var bias = new Dictionary<string, double> { [e[0].ToString()] = 100 };
        var forced = await PostOk("/v1/completions", new { model = fx.Combination, prompt = Prompt, max_tokens = 5, temperature = 1, seed = 3, logit_bias = bias });
        Assert.Equal("eeeee", forced.GetProperty("choices")[0].GetProperty("text").GetString());

        var stopped = await PostOk("/v1/completions", new
        {
            model = fx.Combination, prompt = Prompt, max_tokens = 5, temperature = 0, logit_bias = bias, stop_token_ids = new[] { e[0] },
        });
        var choice = stopped.GetProperty("choices")[0];
        Assert.Equal("", choice.GetProperty("text").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(1, stopped.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Every_logits_processor_over_http_gives_the_single_process_decoders_text()
    {
        var e = Ids(await PostOk("/tokenize", new { model = fx.BaseModel, prompt = "e", add_special_tokens = false }))[0];
        Inference.Decoding.SamplingOptions With(Inference.Decoding.SamplingOptions o) => o with
        {
            FrequencyPenalty = 1.5f, PresencePenalty = 0.5f, RepetitionPenalty = 1.4f, MinP = 0.05f,
            LogitBias = new Dictionary<int, float> { [e] = 3f },
        };
        var expected = fx.Direct(fx.CombinationSpec, Prompt, null, 16, temperature: 0.8f, seed: 9, sampling: With);
        Assert.NotEqual(fx.Direct(fx.CombinationSpec, Prompt, null, 16, temperature: 0.8f, seed: 9).Text, expected.Text);

        var json = await PostOk("/v1/completions", new
        {
            model = fx.Combination, prompt = Prompt, max_tokens = 16, temperature = 0.8, seed = 9,
            frequency_penalty = 1.5, presence_penalty = 0.5, repetition_penalty = 1.4, min_p = 0.05,
            logit_bias = new Dictionary<string, double> { [e.ToString()] = 3 },
        });
        Assert.Equal(expected.Text, json.GetProperty("choices")[0].GetProperty("text").GetString());
    }
}
