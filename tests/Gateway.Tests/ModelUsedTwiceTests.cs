using System.Text.Json;

namespace ProxyOrleans.Gateway.Tests;

/// <summary>
/// A combination that names one model twice — base + α(tuned − base), the anti-expert being the base itself — runs
/// (it was a 500: both roles opened one session id in one worker) and gives the single-process decoder's text.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class ModelUsedTwiceTests(GatewayFixture fx)
{
    [Theory]
    [InlineData(0f, null)]
    [InlineData(0.8f, 11UL)]
    public async Task Anti_expert_equal_to_the_base_gives_the_direct_decoders_text(float temperature, ulong? seed)
    {
        var spec = new CombinationSpec(fx.BaseModel, [new ExpertSpec(fx.ExpertModel, fx.BaseModel, 1f)], 0.5f);
        var expected = fx.Direct(spec, "The old lighthouse keeper", null, 10, temperature, seed);
        using var response = await fx.Http.SendAsync(Http.Post("/v1/completions", JsonSerializer.Serialize(new
        {
            model = fx.BaseModel, prompt = "The old lighthouse keeper", max_tokens = 10, temperature, seed,
            proxy = new { alpha = 0.5, experts = new[] { new { expert = fx.ExpertModel, anti_expert = fx.BaseModel } } },
        }), GatewayFixture.AliceKey));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.OK, body);
        Assert.Equal(expected.Text, JsonDocument.Parse(body).RootElement.GetProperty("choices")[0].GetProperty("text").GetString());
        // Both sessions of the base closed at the end, on every silo.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while ((fx.ActiveSessions(0) > 0 || fx.ActiveSessions(1) > 0) && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.Equal(0, fx.ActiveSessions(0) + fx.ActiveSessions(1));
    }
}
