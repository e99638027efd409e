using System.Text.Json;
using Microsoft.Extensions.Configuration;
using ProxyOrleans.Gateway.Generation;

namespace ProxyOrleans.Gateway.Tests;

/// <summary>
/// The proxy prompt options over HTTP (proxy.answer_cue, proxy.expert_response_prefix) and as a combination's
/// configured defaults: the cluster prefills what the single-process decoder prefills and gives the same text.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class PromptOptionTests(GatewayFixture fx)
{
    const string Prompt = "The old lighthouse keeper";

    CombinationSpec Cued => fx.CombinationSpec with { AnswerCue = GatewayFixture.AnswerCue, ExpertResponsePrefix = GatewayFixture.ResponsePrefix };

    [Fact]
    public async Task Answer_cue_and_response_prefix_give_the_direct_decoders_prompt_and_text()
    {
        var expected = fx.Direct(Cued, Prompt, null, 10);
        var bare = fx.Direct(fx.CombinationSpec, Prompt, null, 10);
        // The options change what the models see and say: a path that dropped either would fail below.
        Assert.NotEqual(bare.PromptTokens, expected.PromptTokens);
        Assert.NotEqual(bare.Text, fx.Direct(fx.CombinationSpec with { ExpertResponsePrefix = GatewayFixture.ResponsePrefix }, Prompt, null, 10).Text);

        var json = await Complete(new
        {
            model = fx.Combination, prompt = Prompt, max_tokens = 10, temperature = 0,
            proxy = new { answer_cue = GatewayFixture.AnswerCue, expert_response_prefix = GatewayFixture.ResponsePrefix },
        });
        Assert.Equal(expected.Text, Text(json));
        Assert.Equal(expected.PromptTokens, json.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        // Chat: the expert renders its template, then the prefix; the base sees the messages inside the cue.
        ChatMessageSpec[] chat = [new("user", "Where does the river begin?")];
        var chatExpected = fx.Direct(Cued, null, chat, 8);
        using var response = await fx.Http.SendAsync(Http.Post("/v1/chat/completions", JsonSerializer.Serialize(new
        {
            model = fx.Combination, messages = new[] { new { role = "user", content = chat[0].Content } }, max_tokens = 8, temperature = 0,
            proxy = new { answer_cue = GatewayFixture.AnswerCue, expert_response_prefix = GatewayFixture.ResponsePrefix },
        }), GatewayFixture.AliceKey));
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(chatExpected.Text, body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    [Fact]
    public async Task A_combinations_configured_defaults_apply_and_a_request_overrides_them()
    {
        // The silos configure proxy-tiny-cued with the cue and the prefix.
        var byDefault = await Complete(new { model = fx.CuedCombination, prompt = Prompt, max_tokens = 10, temperature = 0 });
        Assert.Equal(fx.Direct(Cued, Prompt, null, 10).Text, Text(byDefault));

        // "{prompt}" and "" turn both off: the bare trio.
        var bare = await Complete(new
        {
            model = fx.CuedCombination, prompt = Prompt, max_tokens = 10, temperature = 0,
            proxy = new { answer_cue = "{prompt}", expert_response_prefix = "" },
        });
        Assert.Equal(fx.Direct(fx.CombinationSpec, Prompt, null, 10).Text, Text(bare));

        // One overridden, the other kept from the configuration.
        const string otherCue = "Q: {prompt}\nA:";
        var mixed = await Complete(new
        {
            model = fx.CuedCombination, prompt = Prompt, max_tokens = 10, temperature = 0, proxy = new { answer_cue = otherCue },
        });
        Assert.Equal(fx.Direct(Cued with { AnswerCue = otherCue }, Prompt, null, 10).Text, Text(mixed));
    }

    [Fact]
    public async Task The_gateways_own_combination_configuration_carries_the_defaults()
    {
        await using var gateway = await GatewayFixture.StartGatewayAsync(fx, new Dictionary<string, string?>
        {
            ["ProxyOrleans:Combinations:gw-cued:Base"] = fx.BaseModel,
            ["ProxyOrleans:Combinations:gw-cued:Experts:0:Expert"] = fx.ExpertModel,
            ["ProxyOrleans:Combinations:gw-cued:Experts:0:AntiExpert"] = fx.AntiExpertModel,
            ["ProxyOrleans:Combinations:gw-cued:AnswerCue"] = GatewayFixture.AnswerCue,
            ["ProxyOrleans:Combinations:gw-cued:ExpertResponsePrefix"] = GatewayFixture.ResponsePrefix,
        });
        using var response = await gateway.Http.SendAsync(Http.Post("/v1/completions",
            JsonSerializer.Serialize(new { model = "gw-cued", prompt = Prompt, max_tokens = 10, temperature = 0 }), GatewayFixture.AliceKey));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        Assert.Equal(fx.Direct(Cued, Prompt, null, 10).Text, Text(JsonDocument.Parse(body).RootElement));
    }

    [Fact]
    public void A_configured_cue_without_the_placeholder_is_refused_naming_the_key()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ProxyOrleans:Combinations:bad:Base"] = fx.BaseModel,
            ["ProxyOrleans:Combinations:bad:AnswerCue"] = "Question: Answer:",
        }).Build();
        var e = Assert.Throws<InvalidOperationException>(() => ModelCatalog.ReadCombinations(config));
        Assert.Contains("ProxyOrleans:Combinations:bad:AnswerCue", e.Message);
        Assert.Contains("{prompt}", e.Message);
    }

    static string? Text(JsonElement completion) => completion.GetProperty("choices")[0].GetProperty("text").GetString();

    async Task<JsonElement> Complete(object request)
    {
        using var response = await fx.Http.SendAsync(Http.Post("/v1/completions", JsonSerializer.Serialize(request), GatewayFixture.AliceKey));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.Clone();
    }
}
