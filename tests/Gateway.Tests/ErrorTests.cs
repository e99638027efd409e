using System.Text.Json;

namespace ProxyOrleans.Gateway.Tests;

/// <summary>Every kind of bad input gets a 400 (or 401/403/404/413) with OpenAI's error body naming the field.</summary>
[Collection(GatewayCollection.Name)]
public sealed class ErrorTests(GatewayFixture fx)
{
    public static TheoryData<string, string, string?, string> BadCompletions => new()
    {
        // path, body, param, code
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\"", null, "invalid_json" },
        { "/v1/completions", "[1,2,3]", null, "invalid_json" },
        { "/v1/completions", "", null, "invalid_json" },
        { "/v1/completions", "{\"prompt\": \"hi\"}", "model", "missing_required_parameter" },
        { "/v1/completions", "{\"model\": \"no-such-model\", \"prompt\": \"hi\"}", "model", "model_not_found" },
        { "/v1/completions", "{\"model\": 42, \"prompt\": \"hi\"}", "model", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\"}", "prompt", "missing_required_parameter" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"\"}", "prompt", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": []}", "prompt", "invalid_value" },
        // Token ids are a prompt (TokenIdPromptTests); a list mixing ids and text is not.
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": [1, \"two\", 3]}", "prompt", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"\\ud800 lone surrogate\"}", "prompt", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"stop\": [\"\\udc00\"]}", "stop", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"@LONG\"}", "prompt", "context_length_exceeded" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"max_tokens\": 0}", "max_tokens", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"max_tokens\": 100000}", "max_tokens", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"max_tokens\": -5}", "max_tokens", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"max_tokens\": 2.5}", "max_tokens", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"max_tokens\": \"10\"}", "max_tokens", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"temperature\": \"NaN\"}", "temperature", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"temperature\": 1e999}", "temperature", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"temperature\": -1e999}", "temperature", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"temperature\": 3}", "temperature", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"top_p\": 0}", "top_p", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"alpha\": \"Infinity\"}", "alpha", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"alpha\": 1e400}", "alpha", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"proxy\": {\"alpha\": \"NaN\"}}", "proxy.alpha", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"proxy\": {\"experts\": [{\"expert\": \"nope\", \"anti_expert\": \"@B\"}]}}", "proxy.experts[0].expert", "model_not_found" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"proxy\": {\"experts\": [{\"expert\": \"@B\", \"anti_expert\": \"@B\", \"weight\": 1e309}]}}", "proxy.experts[0].weight", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"proxy\": 7}", "proxy", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"proxy\": {\"answer_cue\": \"Question: Answer:\"}}", "proxy.answer_cue", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"proxy\": {\"answer_cue\": \"{prompt} or {prompt}\"}}", "proxy.answer_cue", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"proxy\": {\"answer_cue\": 5}}", "proxy.answer_cue", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"proxy\": {\"expert_response_prefix\": [\"Answer:\"]}}", "proxy.expert_response_prefix", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"stop\": 5}", "stop", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"stop\": [\"a\", 5]}", "stop", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"stop\": [\"\"]}", "stop", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"stop\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"n\": 0}", "n", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"n\": 1000}", "n", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"stream\": \"yes\"}", "stream", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"stream_options\": {\"include_usage\": true}}", "stream_options", "invalid_value" },
        // Log-probabilities: OpenAI's limits (completions' logprobs ≤ 5, chat's top_logprobs ≤ 20) and types, each naming the field.
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"logprobs\": 6}", "logprobs", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"logprobs\": -1}", "logprobs", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"logprobs\": \"5\"}", "logprobs", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"logprobs\": true}", "logprobs", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"echo\": \"yes\"}", "echo", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"echo\": false, \"max_tokens\": 0}", "max_tokens", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"top_logprobs\": 2}", "top_logprobs", "unknown_parameter" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"echo\": true, \"logprobs\": 1, \"proxy\": {\"answer_cue\": \"Q: {prompt}\"}}", "proxy.answer_cue", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"proxy\": {\"model_logprobs\": 0}}", "proxy.model_logprobs", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"proxy\": {\"model_logprobs\": 21}}", "proxy.model_logprobs", "invalid_value" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"logprobs\": true, \"top_logprobs\": 21}", "top_logprobs", "invalid_value" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"top_logprobs\": 2}", "top_logprobs", "invalid_value" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"logprobs\": 3}", "logprobs", "invalid_type" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"echo\": true}", "echo", "unknown_parameter" },
        // Known OpenAI fields not implemented: refused unless they hold the value that changes nothing.
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"best_of\": 3}", "best_of", "unsupported_parameter" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"suffix\": \"end\"}", "suffix", "unsupported_parameter" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"response_format\": {\"type\": \"json_object\"}}", "response_format", "unsupported_parameter" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": \"function\"}]}", "tools", "unsupported_parameter" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"reasoning_effort\": \"high\"}", "reasoning_effort", "unsupported_parameter" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\", \"name\": \"bob\"}]}", "messages[0].name", "unsupported_parameter" },
        // Logits processors: out of range, wrong types, keys that are not token ids, ids outside the base's vocabulary (the coordinator's check).
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"frequency_penalty\": 2.5}", "frequency_penalty", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"presence_penalty\": -3}", "presence_penalty", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"presence_penalty\": \"1\"}", "presence_penalty", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"repetition_penalty\": 0}", "repetition_penalty", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"min_p\": 1.5}", "min_p", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"logit_bias\": [1]}", "logit_bias", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"logit_bias\": {\"the\": 5}}", "logit_bias", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"logit_bias\": {\"-1\": 5}}", "logit_bias", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"logit_bias\": {\"5\": 101}}", "logit_bias", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"logit_bias\": {\"5\": 1, \"05\": 2}}", "logit_bias", "duplicate_parameter" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"logit_bias\": {\"5\": \"x\"}}", "logit_bias.5", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"logit_bias\": {\"9999999\": 5}}", "logit_bias", "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"stop_token_ids\": 2}", "stop_token_ids", "invalid_type" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"stop_token_ids\": [1.5]}", "stop_token_ids", "invalid_type" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"stop_token_ids\": [9999999]}", "stop_token_ids", "invalid_value" },
        // Unknown fields (a misspelling must not run at the default), in every object; duplicates; wrong case.
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"temprature\": 0}", "temprature", "unknown_parameter" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"Temperature\": 0}", "Temperature", "unknown_parameter" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"messages\": []}", "messages", "unknown_parameter" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"tools\": []}", "tools", "unknown_parameter" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"proxy\": {\"alpah\": 1}}", "proxy.alpah", "unknown_parameter" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"proxy\": {\"experts\": [{\"expert\": \"@B\", \"anti_expert\": \"@B\", \"wieght\": 2}]}}", "proxy.experts[0].wieght", "unknown_parameter" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"stream\": true, \"stream_options\": {\"include_usage\": true, \"x\": 1}}", "stream_options.x", "unknown_parameter" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"temperature\": 0, \"temperature\": 2}", "temperature", "duplicate_parameter" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"\\ud800\": 1}", null, "invalid_value" },
        { "/v1/completions", "{\"model\": \"@M\", \"prompt\": \"hi\", \"user\": 5}", "user", "invalid_type" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\", \"role\": \"system\"}]}", "messages[0].role", "duplicate_parameter" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"hi\", \"cache\": 1}]}]}", "messages[0].content[0].cache", "unknown_parameter" },
        { "/v1/chat/completions", "{\"model\": \"@M\"}", "messages", "missing_required_parameter" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": []}", "messages", "invalid_value" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": \"hi\"}", "messages", "invalid_type" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": [{\"role\": \"wizard\", \"content\": \"hi\"}]}", "messages[0].role", "invalid_value" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": [{\"role\": \"user\"}]}", "messages[0].content", "missing_required_parameter" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": [{\"role\": \"user\", \"content\": \"\"}]}", "messages", "invalid_value" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}", "messages[0].content[0]", "invalid_value" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_completion_tokens\": 0}", "max_completion_tokens", "invalid_value" },
        { "/v1/chat/completions", "{\"model\": \"@M\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"temperature\": null, \"top_p\": 1.5}", "top_p", "invalid_value" },
    };

    [Theory]
    [MemberData(nameof(BadCompletions))]
    public async Task Bad_request_is_400_naming_the_field(string path, string body, string? param, string code)
    {
        body = body.Replace("@M", fx.Combination).Replace("@B", fx.BaseModel).Replace("@LONG", new string('x', fx.MaxPromptChars + 1));
        using var response = await fx.Http.SendAsync(Http.Post(path, body, GatewayFixture.AliceKey));
        await Http.AssertErrorAsync(response, 400, param, code);
    }

    [Theory]
    [InlineData("/v1/completions", "\"best_of\": 1, \"suffix\": \"\", \"user\": \"u-1\"")]
    [InlineData("/v1/chat/completions", "\"response_format\": {\"type\": \"text\"}, \"tools\": [], \"tool_choice\": \"none\", \"store\": false, \"parallel_tool_calls\": true, \"user\": \"u-1\"")]
    public async Task Unimplemented_fields_at_their_default_are_accepted(string path, string fields)
    {
        var input = path == "/v1/completions" ? "\"prompt\": \"hi\"" : "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]";
        var body = $"{{\"model\": \"{fx.Combination}\", {input}, \"max_tokens\": 2, \"temperature\": 0, {fields}}}";
        using var response = await fx.Http.SendAsync(Http.Post(path, body, GatewayFixture.AliceKey));
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData(1e-40, 1.0)]   // logit / t overflows: the limit t → 0 is greedy (an empty text came back before)
    [InlineData(1e-300, 1.0)]  // rounds to float 0: greedy
    [InlineData(1.0, 1e-50)]   // top_p below float's range: only the most likely token
    public async Task Degenerate_temperature_or_top_p_decodes_as_greedy(double temperature, double topP)
    {
        string Body(double t, double p) => JsonSerializer.Serialize(new { model = fx.Combination, prompt = "Once upon a time", max_tokens = 8, temperature = t, top_p = p, seed = 7 });
        async Task<string> TextOf(string body)
        {
            using var r = await fx.Http.SendAsync(Http.Post("/v1/completions", body, GatewayFixture.AliceKey));
            var json = await r.Content.ReadAsStringAsync();
            Assert.True(r.StatusCode == System.Net.HttpStatusCode.OK, json);
            return JsonDocument.Parse(json).RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!;
        }
        var greedy = await TextOf(Body(0, 1));
        Assert.NotEqual("", greedy);
        Assert.Equal(greedy, await TextOf(Body(temperature, topP)));
    }

    [Fact]
    public async Task Prompt_longer_than_the_models_context_is_400_from_the_cluster()
    {
        // Under the gateway's character limit but far over the tiny models' context window: the silo refuses
        // it, the gateway answers 400 naming the prompt, and the silo keeps serving.
        // One byte-level token per 'q' (no merge applies): more tokens than the context holds, fewer characters than the gateway's limit.
        Assert.True(fx.ModelContext + 100 < fx.MaxPromptChars);
        var words = new string('q', fx.ModelContext + 100);
        using var response = await fx.Http.SendAsync(Http.Post("/v1/completions",
            JsonSerializer.Serialize(new { model = fx.Combination, prompt = words, max_tokens = 4 }), GatewayFixture.AliceKey));
        await Http.AssertErrorAsync(response, 400, "prompt");
        using var ok = await fx.Http.SendAsync(Http.Post("/v1/completions",
            JsonSerializer.Serialize(new { model = fx.Combination, prompt = "still alive?", max_tokens = 2, temperature = 0 }), GatewayFixture.AliceKey));
        Assert.Equal(200, (int)ok.StatusCode);
    }

    [Fact]
    public async Task Oversized_body_is_413()
    {
        var body = "{\"model\":\"x\",\"prompt\":\"" + new string('a', (int)fx.MaxBodyBytes + 10) + "\"}";
        using var response = await fx.Http.SendAsync(Http.Post("/v1/completions", body, GatewayFixture.AliceKey));
        await Http.AssertErrorAsync(response, 413, null, "request_too_large");
        Assert.True(response.Headers.ConnectionClose, "the unread body makes the connection unusable: Connection: close");
    }

    [Fact]
    public async Task Deeply_nested_json_is_400_not_a_crash()
    {
        var body = "{\"model\":" + new string('[', 5000) + new string(']', 5000) + "}";
        using var response = await fx.Http.SendAsync(Http.Post("/v1/completions", body, GatewayFixture.AliceKey));
        await Http.AssertErrorAsync(response, 400, null, "invalid_json");
        using var health = await fx.Http.GetAsync("/healthz");
        Assert.Equal(200, (int)health.StatusCode);
    }

    [Fact]
    public async Task Missing_or_wrong_key_is_401()
    {
        using var none = await fx.Http.SendAsync(Http.Post("/v1/completions", "{}", null));
        await Http.AssertErrorAsync(none, 401, null, "invalid_api_key");
        using var wrong = await fx.Http.SendAsync(Http.Post("/v1/completions", "{}", "sk-not-a-tenant"));
        await Http.AssertErrorAsync(wrong, 401, null, "invalid_api_key");
        using var models = await fx.Http.SendAsync(Http.Get("/v1/models", "sk-not-a-tenant"));
        await Http.AssertErrorAsync(models, 401, null, "invalid_api_key");
    }

    [Fact]
    public async Task Model_not_allowed_is_403()
    {
        // Carol may use the base model only: the combination, and naming other models in an override, are refused.
        using var combo = await fx.Http.SendAsync(Http.Post("/v1/completions",
            JsonSerializer.Serialize(new { model = fx.Combination, prompt = "hi" }), GatewayFixture.CarolKey));
        await Http.AssertErrorAsync(combo, 403, "model", "model_not_allowed");
        using var trio = await fx.Http.SendAsync(Http.Post("/v1/completions",
            JsonSerializer.Serialize(new { model = fx.BaseModel, prompt = "hi", proxy = new { experts = new[] { new { expert = fx.ExpertModel, anti_expert = fx.AntiExpertModel } } } }),
            GatewayFixture.CarolKey));
        await Http.AssertErrorAsync(trio, 403, "proxy", "model_not_allowed");
    }

    [Theory]
    [InlineData("{\"alpha\": 0}")]
    [InlineData("{\"proxy\": {\"alpha\": 0}}")]
    [InlineData("{\"proxy\": {\"experts\": []}}")]
    public async Task A_tenant_allowed_only_the_combination_cannot_run_its_base_alone(string steeringOff)
    {
        // Frank may use the combination, not its base: switching the steering off would be the base alone.
        var body = $"{{\"model\": \"{fx.Combination}\", \"prompt\": \"hi\", \"max_tokens\": 2, {steeringOff[1..^1]}}}";
        using var off = await fx.Http.SendAsync(Http.Post("/v1/completions", body, GatewayFixture.FrankKey));
        await Http.AssertErrorAsync(off, 403, "alpha", "model_not_allowed");
        using var plain = await fx.Http.SendAsync(Http.Post("/v1/completions",
            JsonSerializer.Serialize(new { model = fx.BaseModel, prompt = "hi", max_tokens = 2 }), GatewayFixture.FrankKey));
        await Http.AssertErrorAsync(plain, 403, "model", "model_not_allowed");
        using var steered = await fx.Http.SendAsync(Http.Post("/v1/completions",
            JsonSerializer.Serialize(new { model = fx.Combination, prompt = "hi", max_tokens = 2, alpha = 0.5 }), GatewayFixture.FrankKey));
        Assert.Equal(200, (int)steered.StatusCode);
    }

    [Fact]
    public async Task Unknown_path_is_404_with_error_body()
    {
        using var response = await fx.Http.SendAsync(Http.Get("/v1/engines", GatewayFixture.AliceKey));
        await Http.AssertErrorAsync(response, 404, null, "unknown_url");
    }
}
