using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using ProxyOrleans.Gateway.OpenAi;
using ProxyOrleans.Gateway.Tenants;

namespace ProxyOrleans.Gateway.Tests;

/// <summary>
/// The proxy_analysis extension the playground reads: each streamed token with its probability and top tokens
/// under the base, the expert, the anti-expert and the combination, from the real cluster.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class ProxyAnalysisTests(GatewayFixture fx)
{
    async Task<List<JsonElement>> StreamAsync(string extra)
    {
        var body = $$"""{"model": "{{fx.Combination}}", "prompt": "The capital of", "max_tokens": 12, "temperature": 0, "stream": true{{extra}}}""";
        using var response = await fx.Http.SendAsync(Http.Post("/v1/completions", body, GatewayFixture.AliceKey), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await Http.ReadEventsAsync(response);
        Assert.Equal("[DONE]", events[^1]);
        return [.. events.SkipLast(1).Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0].Clone())];
    }

    [Fact]
    public async Task Every_streamed_token_carries_each_models_probability_and_top_tokens()
    {
        var plain = await StreamAsync("");
        var analysed = await StreamAsync(""", "proxy_analysis": {"top_tokens": 3}""");
        // The analysis only reports: the text is the same as without it (greedy).
        Assert.Equal(string.Concat(plain.Select(c => c.GetProperty("text").GetString())), string.Concat(analysed.Select(c => c.GetProperty("text").GetString())));

        var steps = analysed.Where(c => c.TryGetProperty("proxy_analysis", out _)).Select(c => c.GetProperty("proxy_analysis")).ToList();
        Assert.Equal(12, steps.Count); // the tiny models never stop early: one analysis per generated token
        foreach (var step in steps)
        {
            int chosen = step.GetProperty("token_id").GetInt32();
            var models = step.GetProperty("models").EnumerateArray().ToList();
            Assert.Equal(["base", "expert", "anti_expert", "combined"], models.Select(m => m.GetProperty("role").GetString()));
            Assert.Equal([fx.BaseModel, fx.ExpertModel, fx.AntiExpertModel, "combined"], models.Select(m => m.GetProperty("model").GetString()));
            foreach (var m in models)
            {
                var top = m.GetProperty("top").EnumerateArray().ToList();
                Assert.Equal(3, top.Count);
                var ps = top.Select(t => t.GetProperty("p").GetDouble()).ToList();
                Assert.All(ps, p => Assert.InRange(p, 0, 1));
                Assert.Equal(ps.OrderDescending(), ps);
                double chosenP = m.GetProperty("p").GetDouble();
                Assert.InRange(chosenP, 0, 1);
                // Where the chosen token is among a model's top tokens, both report the same probability.
                foreach (var t in top.Where(t => t.GetProperty("id").GetInt32() == chosen))
                    Assert.Equal(t.GetProperty("p").GetDouble(), chosenP, 1e-6);
            }
            // Greedy: the token chosen is the combination's most likely one.
            var combined = models[3].GetProperty("top")[0];
            Assert.Equal(chosen, combined.GetProperty("id").GetInt32());
        }
    }

    [Theory]
    [InlineData(""", "stream": false, "proxy_analysis": {}""", "proxy_analysis")]
    [InlineData(""", "stream": true, "proxy_analysis": 5""", "proxy_analysis")]
    [InlineData(""", "stream": true, "proxy_analysis": {"top_tokens": 0}""", "proxy_analysis.top_tokens")]
    [InlineData(""", "stream": true, "proxy_analysis": {"top_tokens": 21}""", "proxy_analysis.top_tokens")]
    public async Task Bad_analysis_options_are_400_naming_the_field(string extra, string param)
    {
        var body = $$"""{"model": "{{fx.Combination}}", "prompt": "hi", "max_tokens": 2{{extra}}}""";
        using var response = await fx.Http.SendAsync(Http.Post("/v1/completions", body, GatewayFixture.AliceKey));
        await Http.AssertErrorAsync(response, 400, param);
    }

    [Theory]
    [InlineData("127.0.0.1", true)]
    [InlineData("::1", true)]
    [InlineData("::ffff:127.0.0.1", true)]
    [InlineData("192.0.2.10", false)]
    [InlineData("2001:db8::1", false)]
    public void Without_tenants_keyless_requests_are_served_to_loopback_callers_only(string remote, bool served)
    {
        var auth = new TenantAuth(new TenantStore([]), new GatewayOptions { AllowAnonymous = true });
        var ctx = new DefaultHttpContext();
        ctx.Connection.RemoteIpAddress = IPAddress.Parse(remote);
        if (served)
        {
            auth.Authenticate(ctx);
            Assert.Equal("anonymous", TenantAuth.Current(ctx).Name);
        }
        else
        {
            var e = Assert.Throws<ApiError>(() => auth.Authenticate(ctx));
            Assert.Equal(401, e.Status);
            Assert.Contains("loopback", e.Message);
            Assert.Contains("TenantsFile", e.Message);
        }
    }
}
