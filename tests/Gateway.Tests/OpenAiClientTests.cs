using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text.Json;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Models;

namespace ProxyOrleans.Gateway.Tests;

/// <summary>The official OpenAI .NET client against the real gateway and cluster; text compared with the direct library path.</summary>
[Collection(GatewayCollection.Name)]
public sealed class OpenAiClientTests(GatewayFixture fx)
{
    ChatClient Chat(string model, string key = GatewayFixture.AliceKey) => new(model, new ApiKeyCredential(key), fx.ClientOptions());

    static readonly ChatMessage[] Conversation =
        [new SystemChatMessage("You answer briefly."), new UserChatMessage("Where does the river begin?")];

    [Fact]
    public async Task Models_lists_combinations_and_hosted_models_the_key_may_use()
    {
        var alice = new OpenAIModelClient(new ApiKeyCredential(GatewayFixture.AliceKey), fx.ClientOptions());
        var ids = (await alice.GetModelsAsync()).Value.Select(m => m.Id).ToHashSet();
        Assert.Contains(fx.Combination, ids);
        Assert.Contains(fx.BaseModel, ids);
        Assert.Contains(fx.ExpertModel, ids);
        Assert.Contains(fx.AntiExpertModel, ids);

        var carol = new OpenAIModelClient(new ApiKeyCredential(GatewayFixture.CarolKey), fx.ClientOptions());
        Assert.Equal([fx.BaseModel], (await carol.GetModelsAsync()).Value.Select(m => m.Id).ToArray());

        Assert.Equal(fx.Combination, (await alice.GetModelAsync(fx.Combination)).Value.Id);
        var hidden = await Assert.ThrowsAsync<ClientResultException>(() => carol.GetModelAsync(fx.Combination));
        Assert.Equal(404, hidden.Status);
    }

    [Fact]
    public async Task Chat_completion_equals_the_direct_proxy_decoder()
    {
        var expected = fx.Direct(fx.CombinationSpec, prompt: null, messages: Conversation.Select(ToSpec).ToArray(), maxTokens: 12);
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 12 };
        ChatCompletion c = (await Chat(fx.Combination).CompleteChatAsync(Conversation, options)).Value;

        Assert.Equal(expected.Text, c.Content[0].Text);
        Assert.Equal(expected.FinishReason == "length" ? ChatFinishReason.Length : ChatFinishReason.Stop, c.FinishReason);
        Assert.Equal(expected.CompletionTokens, c.Usage.OutputTokenCount);
        Assert.Equal(expected.PromptTokens, c.Usage.InputTokenCount);
        Assert.Equal(c.Usage.InputTokenCount + c.Usage.OutputTokenCount, c.Usage.TotalTokenCount);
        Assert.StartsWith("chatcmpl-", c.Id);
        Assert.Equal(fx.Combination, c.Model);
        Assert.InRange(c.CreatedAt, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(1));
    }

    [Fact]
    public async Task The_clients_penalties_and_logit_biases_decode_as_the_direct_proxy_decoder_does()
    {
        Inference.Decoding.SamplingOptions With(Inference.Decoding.SamplingOptions o) => o with
        {
            FrequencyPenalty = 1.5f, PresencePenalty = 0.75f, LogitBias = new Dictionary<int, float> { [0x65] = 4f, [0x74] = -100f },
        };
        var messages = Conversation.Select(ToSpec).ToArray();
        var expected = fx.Direct(fx.CombinationSpec, null, messages, 12, sampling: With);
        Assert.NotEqual(fx.Direct(fx.CombinationSpec, null, messages, 12).Text, expected.Text); // the fields change the text
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 12, FrequencyPenalty = 1.5f, PresencePenalty = 0.75f };
        options.LogitBiases[0x65] = 4;
        options.LogitBiases[0x74] = -100;
        ChatCompletion c = (await Chat(fx.Combination).CompleteChatAsync(Conversation, options)).Value;
        Assert.Equal(expected.Text, c.Content[0].Text);
    }

    [Fact]
    public async Task Chat_streaming_yields_the_same_text_chunk_by_chunk()
    {
        var expected = fx.Direct(fx.CombinationSpec, null, Conversation.Select(ToSpec).ToArray(), 12);
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 12 };
        var text = new System.Text.StringBuilder();
        int contentUpdates = 0;
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        string? id = null;
        await foreach (var u in Chat(fx.Combination).CompleteChatStreamingAsync(Conversation, options))
        {
            id ??= u.CompletionId;
            Assert.Equal(id, u.CompletionId);
            foreach (var part in u.ContentUpdate) { text.Append(part.Text); if (part.Text.Length > 0) contentUpdates++; }
            finish ??= u.FinishReason;
            usage ??= u.Usage;
        }
        Assert.Equal(expected.Text, text.ToString());
        Assert.True(contentUpdates >= 2, $"expected several content chunks, got {contentUpdates}: {JsonSerializer.Serialize(text.ToString())}");
        Assert.Equal(expected.FinishReason == "length" ? ChatFinishReason.Length : ChatFinishReason.Stop, finish);
        Assert.NotNull(usage); // the client asks for stream_options.include_usage
        Assert.Equal(expected.CompletionTokens, usage!.OutputTokenCount);
    }

    [Fact]
    public async Task Plain_model_decodes_base_only_and_alpha_override_changes_the_mix()
    {
        // A plain model name = base-only decoding, equal to the direct path with no experts.
        var prompt = "Once upon a time";
        var baseOnly = fx.Direct(new(fx.BaseModel, [], 0f), prompt, null, 10);
        var plain = await Complete(new { model = fx.BaseModel, prompt, max_tokens = 10, temperature = 0 });
        Assert.Equal(baseOnly.Text, plain.GetProperty("choices")[0].GetProperty("text").GetString());

        // alpha as an extension field through the client's protocol method: equals the direct path at that alpha.
        var spec = fx.CombinationSpec with { Alpha = 0.5f };
        var expected = fx.Direct(spec, prompt, null, 10);
        var raw = new OpenAIClient(new ApiKeyCredential(GatewayFixture.AliceKey), fx.ClientOptions());
        var result = await raw.GetChatClient(fx.Combination).CompleteChatAsync(
            BinaryContent.Create(BinaryData.FromObjectAsJson(new
            {
                model = fx.Combination, max_tokens = 10, temperature = 0, alpha = 0.5,
                messages = new[] { new { role = "user", content = prompt } },
            })));
        var chatText = JsonDocument.Parse(result.GetRawResponse().Content).RootElement
            .GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString();
        Assert.Equal(fx.Direct(spec, null, [new ChatMessageSpec("user", prompt)], 10).Text, chatText);

        var completion = await Complete(new { model = fx.Combination, prompt, max_tokens = 10, temperature = 0, alpha = 0.5 });
        Assert.Equal(expected.Text, completion.GetProperty("choices")[0].GetProperty("text").GetString());

        // The trio given per request (proxy.experts) on a plain base = the configured combination.
        var trio = await Complete(new
        {
            model = fx.BaseModel, prompt, max_tokens = 10, temperature = 0,
            proxy = new { alpha = fx.CombinationSpec.Alpha, experts = new[] { new { expert = fx.ExpertModel, anti_expert = fx.AntiExpertModel, weight = 1.0 } } },
        });
        Assert.Equal(fx.Direct(fx.CombinationSpec, prompt, null, 10).Text, trio.GetProperty("choices")[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task Completions_non_streaming_and_streaming_match_the_direct_path_in_openai_shapes()
    {
        var prompt = "The old lighthouse keeper";
        var expected = fx.Direct(fx.CombinationSpec, prompt, null, 9);
        var json = await Complete(new { model = fx.Combination, prompt, max_tokens = 9, temperature = 0 });
        Assert.Equal("text_completion", json.GetProperty("object").GetString());
        Assert.StartsWith("cmpl-", json.GetProperty("id").GetString());
        var choice = json.GetProperty("choices")[0];
        Assert.Equal(expected.Text, choice.GetProperty("text").GetString());
        Assert.Equal(expected.FinishReason, choice.GetProperty("finish_reason").GetString());
        Assert.Equal(expected.CompletionTokens, json.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        using var response = await fx.Http.SendAsync(Http.Post("/v1/completions",
            JsonSerializer.Serialize(new { model = fx.Combination, prompt, max_tokens = 9, temperature = 0, stream = true, stream_options = new { include_usage = true } }),
            GatewayFixture.AliceKey), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = await Http.ReadEventsAsync(response);
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.All(chunks, c => Assert.Equal("text_completion", c.GetProperty("object").GetString()));
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());
        var withChoices = chunks.Where(c => c.GetProperty("choices").GetArrayLength() > 0).ToList();
        Assert.Equal(expected.Text, string.Concat(withChoices.Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString())));
        Assert.Equal(expected.FinishReason, withChoices[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.All(withChoices[..^1], c => Assert.Equal(JsonValueKind.Null, c.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind));
        Assert.Equal(expected.CompletionTokens, chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task N_choices_with_a_seed_repeat_exactly_and_stop_sequences_cut_the_text()
    {
        var request = new { model = fx.Combination, prompt = "In the valley", max_tokens = 8, temperature = 0.9, seed = 7, n = 3 };
        var a = await Complete(request);
        var b = await Complete(request);
        var texts = a.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("text").GetString()!).ToArray();
        Assert.Equal(3, texts.Length);
        Assert.Equal([0, 1, 2], a.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("index").GetInt32()).ToArray());
        Assert.Equal(texts, b.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("text").GetString()!).ToArray());
        // Choice j is seed + j: each equals the direct path with that seed.
        for (var j = 0; j < 3; j++)
            Assert.Equal(fx.Direct(fx.CombinationSpec, "In the valley", null, 8, temperature: 0.9f, seed: 7UL + (ulong)j).Text, texts[j]);

        // A stop sequence taken from the greedy output: the text ends before it, finish_reason "stop".
        var greedy = fx.Direct(fx.CombinationSpec, "In the valley", null, 16).Text;
        var stop = greedy.Length >= 4 ? greedy.Substring(greedy.Length / 2, 2) : null;
        Assert.False(string.IsNullOrEmpty(stop), $"greedy text too short to pick a stop sequence: '{greedy}'");
        var cut = await Complete(new { model = fx.Combination, prompt = "In the valley", max_tokens = 16, temperature = 0, stop = new[] { stop } });
        var cutText = cut.GetProperty("choices")[0].GetProperty("text").GetString()!;
        Assert.Equal(greedy[..greedy.IndexOf(stop!, StringComparison.Ordinal)], cutText);
        Assert.Equal("stop", cut.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Streaming_n_choices_interleaves_chunks_by_index_and_each_finishes()
    {
        using var response = await fx.Http.SendAsync(Http.Post("/v1/chat/completions",
            JsonSerializer.Serialize(new
            {
                model = fx.Combination, max_tokens = 6, temperature = 0.8, seed = 3, n = 2, stream = true,
                messages = new[] { new { role = "user", content = "Two answers please" } },
            }), GatewayFixture.AliceKey), HttpCompletionOption.ResponseHeadersRead);
        var events = await Http.ReadEventsAsync(response);
        Assert.Equal("[DONE]", events[^1]);
        var choices = events[..^1].Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0]).ToList();
        for (var j = 0; j < 2; j++)
        {
            var mine = choices.Where(c => c.GetProperty("index").GetInt32() == j).ToList();
            Assert.Equal("assistant", mine[0].GetProperty("delta").GetProperty("role").GetString());
            Assert.Equal("length", mine[^1].GetProperty("finish_reason").GetString());
            var text = string.Concat(mine.Select(c => c.GetProperty("delta").TryGetProperty("content", out var t) ? t.GetString() : ""));
            var expected = fx.Direct(fx.CombinationSpec, null, [new ChatMessageSpec("user", "Two answers please")], 6, temperature: 0.8f, seed: 3UL + (ulong)j);
            Assert.Equal(expected.Text, text);
        }
    }

    async Task<JsonElement> Complete(object request)
    {
        using var response = await fx.Http.SendAsync(Http.Post("/v1/completions", JsonSerializer.Serialize(request), GatewayFixture.AliceKey));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    static ChatMessageSpec ToSpec(ChatMessage m) => m switch
    {
        SystemChatMessage s => new("system", s.Content[0].Text),
        UserChatMessage u => new("user", u.Content[0].Text),
        _ => throw new NotSupportedException(),
    };
}
