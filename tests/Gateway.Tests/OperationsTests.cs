using System.Text.Json;

namespace ProxyOrleans.Gateway.Tests;

[Collection(GatewayCollection.Name)]
public sealed class OperationsTests(GatewayFixture fx)
{
    /// <summary>
    /// On a gateway of its own: OpenTelemetry drops a provider's series when another Meter of the same name is
    /// disposed, and tests start and stop gateways beside the fixture's in this process, so the fixture's /metrics
    /// loses series at the next scrape after such a test (docs/gateway.md, "Tests").
    /// </summary>
    [Fact]
    public async Task Healthz_readyz_and_metrics()
    {
        await using var gateway = await GatewayFixture.StartGatewayAsync(fx, new Dictionary<string, string?>());
        var http = gateway.Http;
        using var health = await http.GetAsync("/healthz");
        Assert.Equal(200, (int)health.StatusCode);

        using var ready = await http.GetAsync("/readyz");
        var readyBody = await ready.Content.ReadAsStringAsync();
        Assert.True(ready.IsSuccessStatusCode, readyBody);
        Assert.Contains(fx.BaseModel, readyBody);

        // A request first, so the counters have something to show.
        using var _ = await http.SendAsync(Http.Post("/v1/completions",
            JsonSerializer.Serialize(new { model = fx.Combination, prompt = "metrics", max_tokens = 3, temperature = 0 }), GatewayFixture.AliceKey));
        using var __ = await http.SendAsync(Http.Post("/v1/completions", "{", GatewayFixture.AliceKey));
        var metrics = await http.GetStringAsync("/metrics");
        Assert.Contains("proxyorleans_gateway_completion_tokens", metrics);
        Assert.Contains("proxyorleans_gateway_time_to_first_token_seconds_bucket", metrics);
        Assert.Contains("proxyorleans_gateway_rejections", metrics);
        Assert.Contains("reason=\"invalid_request\"", metrics);
        Assert.Contains("proxyorleans_gateway_active_generations", metrics);
        Assert.Contains("proxyorleans_gateway_step_latency_seconds_bucket", metrics);
        Assert.Contains($"proxyorleans_gateway_cluster_step_latency_seconds_count{{otel_scope_name=\"ProxyOrleans.Gateway\",model=\"{fx.Combination}\"}}", metrics);
        Assert.Contains("proxyorleans_gateway_model_compute_latency_seconds_bucket", metrics);
        Assert.Contains("proxyorleans_gateway_requests_total", metrics);
    }

    [Fact]
    public async Task Readyz_is_503_while_a_combination_names_a_model_nobody_hosts()
    {
        // A second gateway on the same cluster whose configuration adds a combination with an unhosted expert.
        await using var other = await GatewayFixture.StartGatewayAsync(fx, new Dictionary<string, string?>
        {
            ["ProxyOrleans:Combinations:needs-missing:Base"] = fx.BaseModel,
            ["ProxyOrleans:Combinations:needs-missing:Experts:0:Expert"] = "model-nobody-hosts",
            ["ProxyOrleans:Combinations:needs-missing:Experts:0:AntiExpert"] = fx.AntiExpertModel,
        });
        using var ready = await other.Http.GetAsync("/readyz");
        var body = await ready.Content.ReadAsStringAsync();
        Assert.Equal(503, (int)ready.StatusCode);
        Assert.Contains("model-nobody-hosts", body);

        // Using that combination is a clear 503, not a hang.
        using var r = await other.Http.SendAsync(Http.Post("/v1/completions",
            JsonSerializer.Serialize(new { model = "needs-missing", prompt = "hi", max_tokens = 2 }), GatewayFixture.AliceKey));
        await Http.AssertErrorAsync(r, 503, null, "model_not_hosted");
    }
}
