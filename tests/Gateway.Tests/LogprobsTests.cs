using System.ClientModel;
using System.Text;
using System.Text.Json;
using OpenAI.Chat;
using ProxyOrleans.Inference.Decoding;

namespace ProxyOrleans.Gateway.Tests;

/// <summary>
/// Log-probabilities end to end: the official OpenAI client reads chat's logprobs in its own types, completions' legacy
/// shape with echo, the proxy extension's per-model scores, and harness-style multiple choice on the demo models; every
/// score equals the single-process ProxyDecoder's.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class LogprobsTests(GatewayFixture fx, Xunit.Abstractions.ITestOutputHelper output)
{
    static readonly OpenAI.Chat.ChatMessage[] Conversation = [new UserChatMessage("Where does the river begin?")];
    static readonly ChatMessageSpec[] ConversationSpec = [new("user", "Where does the river begin?")];

    ChatClient Chat(string model) => new(model, new ApiKeyCredential(GatewayFixture.AliceKey), fx.ClientOptions());

    async Task<JsonElement> PostAsync(string path, object body)
    {
        using var r = await fx.Http.SendAsync(Http.Post(path, JsonSerializer.Serialize(body), GatewayFixture.AliceKey));
        var json = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == System.Net.HttpStatusCode.OK, json);
        return JsonDocument.Parse(json).RootElement.Clone();
    }

    async Task<List<JsonElement>> StreamAsync(string path, object body)
    {
        using var r = await fx.Http.SendAsync(Http.Post(path, JsonSerializer.Serialize(body), GatewayFixture.AliceKey), HttpCompletionOption.ResponseHeadersRead);
        Assert.True(r.IsSuccessStatusCode, await r.Content.ReadAsStringAsync());
        var events = await Http.ReadEventsAsync(r);
        Assert.Equal("[DONE]", events[^1]);
        return [.. events[..^1].Select(e => JsonDocument.Parse(e).RootElement.Clone())];
    }

    [Fact]
    public async Task Chat_logprobs_and_top_logprobs_come_back_in_the_OpenAI_clients_types_equal_to_the_direct_decoder()
    {
        var expected = fx.DirectGeneration(fx.CombinationSpec, null, ConversationSpec, 6, new DecodeOptions { Logprobs = 3 }).Logprobs!;
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 6, IncludeLogProbabilities = true, TopLogProbabilityCount = 3 };

        ChatCompletion c = (await Chat(fx.Combination).CompleteChatAsync(Conversation, options)).Value;
        var got = c.ContentTokenLogProbabilities;
        Assert.Equal(expected.Count, got.Count);
        for (int i = 0; i < got.Count; i++)
        {
            Assert.Equal(expected[i].Logprob, got[i].LogProbability);
            Assert.Equal(got[i].Token, Encoding.UTF8.GetString(got[i].Utf8Bytes!.Value.Span));
            Assert.Equal(expected[i].Top.Select(t => t.Logprob), got[i].TopLogProbabilities.Select(t => t.LogProbability));
            Assert.True(got[i].LogProbability <= got[i].TopLogProbabilities[0].LogProbability);
        }
        // Greedy: every chosen token is the most likely one, and the tokens spell the text.
        Assert.All(got, t => Assert.Equal(t.TopLogProbabilities[0].LogProbability, t.LogProbability));

        var streamed = new List<ChatTokenLogProbabilityDetails>();
        await foreach (var u in Chat(fx.Combination).CompleteChatStreamingAsync(Conversation, options)) streamed.AddRange(u.ContentTokenLogProbabilities);
        Assert.Equal(got.Select(t => (t.Token, t.LogProbability)), streamed.Select(t => (t.Token, t.LogProbability)));
    }

    [Fact]
    public async Task Completions_echo_with_logprobs_scores_the_prompt_then_the_completion_in_the_legacy_shape()
    {
        const string prompt = "The old lighthouse keeper";
        var expected = fx.DirectGeneration(fx.CombinationSpec, prompt, null, 4, new DecodeOptions { Logprobs = 2, PromptLogprobs = 2 });
        var body = new { model = fx.Combination, prompt, max_tokens = 4, temperature = 0, logprobs = 2, echo = true };
        var choice = (await PostAsync("/v1/completions", body)).GetProperty("choices")[0];
        Assert.StartsWith(prompt, choice.GetProperty("text").GetString());
        var lp = choice.GetProperty("logprobs");
        var tokens = lp.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!).ToArray();
        var scores = lp.GetProperty("token_logprobs").EnumerateArray().ToArray();
        var tops = lp.GetProperty("top_logprobs").EnumerateArray().ToArray();
        var offsets = lp.GetProperty("text_offset").EnumerateArray().Select(o => o.GetInt32()).ToArray();
        int promptTokens = expected.PromptLogprobs!.Length;
        Assert.Equal(promptTokens + 4, tokens.Length);
        Assert.Equal(JsonValueKind.Null, scores[0].ValueKind); // nothing comes before the first prompt token
        Assert.Equal(JsonValueKind.Null, tops[0].ValueKind);
        for (int t = 1; t < promptTokens; t++) Assert.Equal(expected.PromptLogprobs[t]!.Logprob, scores[t].GetSingle());
        for (int i = 0; i < 4; i++) Assert.Equal(expected.Logprobs![i].Logprob, scores[promptTokens + i].GetSingle());
        for (int t = 1; t < tokens.Length; t++)
        {
            // The top 2 and always the chosen token (OpenAI's "up to logprobs + 1").
            var top = tops[t].EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetSingle());
            Assert.InRange(top.Count, 1, 3);
            Assert.Equal(scores[t].GetSingle(), top[tokens[t]]);
        }
        Assert.Equal(0, offsets[0]);
        for (int t = 1; t < tokens.Length; t++) Assert.Equal(offsets[t - 1] + tokens[t - 1].Length, offsets[t]);

        // Streamed: the prompt first, as its own chunk with its scores, then one chunk per token; the same numbers.
        var chunks = await StreamAsync("/v1/completions", new { model = fx.Combination, prompt, max_tokens = 4, temperature = 0, logprobs = 2, echo = true, stream = true });
        var first = chunks[0].GetProperty("choices")[0];
        Assert.Equal(prompt, first.GetProperty("text").GetString());
        var streamedScores = chunks.Select(c => c.GetProperty("choices")[0].GetProperty("logprobs")).Where(l => l.ValueKind == JsonValueKind.Object)
            .SelectMany(l => l.GetProperty("token_logprobs").EnumerateArray()).Select(s => s.ValueKind == JsonValueKind.Null ? (float?)null : s.GetSingle()).ToArray();
        Assert.Equal(scores.Select(s => s.ValueKind == JsonValueKind.Null ? (float?)null : s.GetSingle()), streamedScores);
    }

    [Fact]
    public async Task Max_tokens_0_with_echo_returns_only_the_scored_prompt()
    {
        const string prompt = "Once upon a time";
        var expected = fx.DirectGeneration(fx.CombinationSpec, prompt, null, 0, new DecodeOptions { PromptLogprobs = 0 });
        var json = await PostAsync("/v1/completions", new { model = fx.Combination, prompt, max_tokens = 0, logprobs = 0, echo = true });
        var choice = json.GetProperty("choices")[0];
        Assert.Equal(prompt, choice.GetProperty("text").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(0, json.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        var scores = choice.GetProperty("logprobs").GetProperty("token_logprobs").EnumerateArray().ToArray();
        Assert.Equal(expected.PromptLogprobs!.Length, scores.Length);
        for (int t = 1; t < scores.Length; t++) Assert.Equal(expected.PromptLogprobs[t]!.Logprob, scores[t].GetSingle());
    }

    [Fact]
    public async Task A_two_choice_question_scored_by_echo_and_max_tokens_0_picks_the_right_answer_with_the_demo_models()
    {
        // What lm-evaluation-harness does for multiple choice: score context + each answer, compare the answers' log-likelihood.
        const string context = "Jonas Larsen lives in";
        // The demo world's fact (models/demo/demo-questions.json) and another of its cities. Measured: Porto −0.04,
        // Lisbon −7.4; every other city of the world scores −4.2 or lower.
        string[] answers = [" Porto.", " Lisbon."];
        var likelihoods = new List<double>();
        foreach (var answer in answers)
        {
            var json = await PostAsync("/v1/completions", new { model = fx.DemoCombination, prompt = context + answer, max_tokens = 0, logprobs = 0, echo = true });
            var lp = json.GetProperty("choices")[0].GetProperty("logprobs");
            var offsets = lp.GetProperty("text_offset").EnumerateArray().Select(o => o.GetInt32()).ToArray();
            var scores = lp.GetProperty("token_logprobs").EnumerateArray().ToArray();
            var tokens = lp.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!).ToArray();
            // The answer's tokens: those ending past the context's text (the offsets count the tokens' own strings).
            int contextChars = string.Concat(tokens).Length - answer.Length;
            likelihoods.Add(Enumerable.Range(0, tokens.Length).Where(t => offsets[t] + tokens[t].Length > contextChars).Sum(t => (double)scores[t].GetSingle()));
        }
        output.WriteLine(string.Join(", ", answers.Zip(likelihoods, (a, l) => $"{a.Trim()} {l:F3}")));
        Assert.True(likelihoods[0] > likelihoods[1], $"log-likelihood of{answers[0]} {likelihoods[0]:F3}, of{answers[1]} {likelihoods[1]:F3}");
    }

    [Fact]
    public async Task Proxy_model_logprobs_return_each_models_top_tokens_and_scores_per_token()
    {
        var body = new { model = fx.Combination, prompt = "In the valley", max_tokens = 3, temperature = 0, logprobs = 1, proxy = new { model_logprobs = 2 } };
        var choice = (await PostAsync("/v1/completions", body)).GetProperty("choices")[0];
        var steps = choice.GetProperty("proxy_logprobs").EnumerateArray().ToArray();
        Assert.Equal(3, steps.Length);
        var combinedScores = choice.GetProperty("logprobs").GetProperty("token_logprobs").EnumerateArray().Select(s => s.GetSingle()).ToArray();
        for (int i = 0; i < steps.Length; i++)
        {
            var models = steps[i].GetProperty("models").EnumerateArray().ToDictionary(m => m.GetProperty("role").GetString()!);
            Assert.Equal(["base", "expert", "anti_expert", "combined"], models.Keys);
            Assert.Equal(fx.BaseModel, models["base"].GetProperty("model").GetString());
            foreach (var m in models.Values)
            {
                var top = m.GetProperty("top_logprobs").EnumerateArray().ToArray();
                Assert.Equal(2, top.Length);
                Assert.True(top[0].GetProperty("logprob").GetSingle() >= top[1].GetProperty("logprob").GetSingle());
                Assert.True(m.GetProperty("logprob").GetSingle() <= top[0].GetProperty("logprob").GetSingle());
            }
            // The combination's score of its own token is the choice's logprob of it.
            Assert.Equal(combinedScores[i], models["combined"].GetProperty("logprob").GetSingle(), 1e-5f);
        }
    }
}
