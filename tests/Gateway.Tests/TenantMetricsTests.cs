using System.Text.Json;
using ProxyOrleans.Client.Benchmarks;
using ProxyOrleans.Gateway.Operations;

namespace ProxyOrleans.Gateway.Tests;

/// <summary>
/// /metrics on the API port never names a tenant; per-tenant token counters are served only on the internal port
/// ProxyOrleans:Gateway:TenantMetricsPort, chosen by the port the connection arrived on (not a Host header).
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class TenantMetricsTests(GatewayFixture fx)
{
    static Task<HttpResponseMessage> Complete(HttpClient http, string model, string prompt) =>
        http.SendAsync(Http.Post("/v1/completions", JsonSerializer.Serialize(new { model, prompt, max_tokens = 2, temperature = 0 }), GatewayFixture.AliceKey));

    // Each test on a gateway of its own, as OperationsTests explains (series of same-named meters are lost).
    [Fact]
    public async Task Api_port_metrics_name_no_tenant_by_default()
    {
        await using var gw = await GatewayFixture.StartGatewayAsync(fx, new Dictionary<string, string?>());
        using (var r = await Complete(gw.Http, fx.Combination, "tenant metrics, default"))
            Assert.True(r.IsSuccessStatusCode, await r.Content.ReadAsStringAsync());
        var metrics = await gw.Http.GetStringAsync("/metrics");
        Assert.Contains($"proxyorleans_gateway_prompt_tokens_total{{otel_scope_name=\"{GatewayMetrics.MeterName}\",model=\"{fx.Combination}\"}}", metrics);
        Assert.Contains("proxyorleans_gateway_completion_tokens_total", metrics);
        Assert.DoesNotContain("tenant=", metrics);
        Assert.DoesNotContain("alice", metrics);
    }

    [Fact]
    public async Task Tenant_series_only_on_the_internal_port()
    {
        int internalPort = LoopbackPorts.Next();
        await using var gw = await GatewayFixture.StartGatewayAsync(fx,
            new Dictionary<string, string?> { [TenantMetricsEndpoint.PortKey] = internalPort.ToString() }, $"http://127.0.0.1:{internalPort}");
        using (var r = await Complete(gw.Http, fx.Combination, "tenant metrics, internal port"))
            Assert.True(r.IsSuccessStatusCode, await r.Content.ReadAsStringAsync());

        var inside = await gw.Http.GetStringAsync($"http://127.0.0.1:{internalPort}/metrics");
        Assert.Contains("proxyorleans_gateway_tenant_prompt_tokens_total{", inside);
        Assert.Contains("proxyorleans_gateway_tenant_completion_tokens_total{", inside);
        Assert.Contains($"model=\"{fx.Combination}\",tenant=\"alice\"", inside);

        var outside = await gw.Http.GetStringAsync("/metrics");
        Assert.Contains("proxyorleans_gateway_prompt_tokens_total", outside);
        Assert.DoesNotContain("alice", outside);
        Assert.DoesNotContain("tenant=", outside);
        // A client that claims the internal port in its Host header still gets the API port's series.
        using var spoof = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        spoof.Headers.Host = $"127.0.0.1:{internalPort}";
        using var spoofed = await gw.Http.SendAsync(spoof);
        Assert.DoesNotContain("alice", await spoofed.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_bad_port_is_refused_at_start()
    {
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            GatewayFixture.StartGatewayAsync(fx, new Dictionary<string, string?> { [TenantMetricsEndpoint.PortKey] = "metrics" }));
        Assert.Contains($"{TenantMetricsEndpoint.PortKey} is 'metrics': give a TCP port", e.Message);
    }
}
