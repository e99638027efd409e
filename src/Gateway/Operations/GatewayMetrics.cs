using System.Diagnostics.Metrics;

namespace ProxyOrleans.Gateway.Operations;

/// <summary>
/// Gateway instruments (meter "ProxyOrleans.Gateway"), exported by OpenTelemetry's Prometheus endpoint /metrics; none
/// of them names a tenant. The per-tenant token counters are a meter of their own ("ProxyOrleans.Gateway.Tenants"),
/// served only on the internal port ProxyOrleans:Gateway:TenantMetricsPort (off by default, TenantMetricsEndpoint):
/// tenant names are customer data, and the API port's /metrics is reachable by whoever reaches the API.
/// </summary>
public sealed class GatewayMetrics : IDisposable
{
    public const string MeterName = "ProxyOrleans.Gateway";
    public const string TenantMeterName = "ProxyOrleans.Gateway.Tenants";
    readonly Meter meter;
    readonly Meter tenantMeter;

    public Counter<long> Requests { get; }
    public Counter<long> PromptTokens { get; }
    public Counter<long> CompletionTokens { get; }
    public Counter<long> TenantPromptTokens { get; }
    public Counter<long> TenantCompletionTokens { get; }
    public Counter<long> Rejections { get; }
    public Histogram<double> TimeToFirstToken { get; }
    public Histogram<double> StepLatency { get; }
    public Histogram<double> RequestDuration { get; }
    public Histogram<double> ClusterStepLatency { get; }
    public Histogram<double> ModelComputeLatency { get; }
    public UpDownCounter<long> ActiveGenerations { get; }

    public GatewayMetrics(IMeterFactory factory)
    {
        meter = factory.Create(MeterName);
        Requests = meter.CreateCounter<long>("proxyorleans.gateway.requests", "{request}", "Requests answered, by endpoint, model and HTTP status");
        PromptTokens = meter.CreateCounter<long>("proxyorleans.gateway.prompt_tokens", "{token}", "Prompt tokens, by model");
        CompletionTokens = meter.CreateCounter<long>("proxyorleans.gateway.completion_tokens", "{token}", "Generated tokens, by model");
        tenantMeter = factory.Create(TenantMeterName);
        TenantPromptTokens = tenantMeter.CreateCounter<long>("proxyorleans.gateway.tenant_prompt_tokens", "{token}", "Prompt tokens, by model and tenant");
        TenantCompletionTokens = tenantMeter.CreateCounter<long>("proxyorleans.gateway.tenant_completion_tokens", "{token}", "Generated tokens, by model and tenant");
        Rejections = meter.CreateCounter<long>("proxyorleans.gateway.rejections", "{request}", "Requests refused, by reason");
        TimeToFirstToken = meter.CreateHistogram<double>("proxyorleans.gateway.time_to_first_token", "s", "From request arrival to the first generated text, by model");
        StepLatency = meter.CreateHistogram<double>("proxyorleans.gateway.step_latency", "s", "Time between consecutive tokens of one generation as the gateway sees them, by model");
        RequestDuration = meter.CreateHistogram<double>("proxyorleans.gateway.request_duration", "s", "Whole request, by endpoint and model");
        ClusterStepLatency = meter.CreateHistogram<double>("proxyorleans.gateway.cluster_step_latency", "s", "Mean decode step time measured by the coordinator grain, per generation, by model");
        ModelComputeLatency = meter.CreateHistogram<double>("proxyorleans.gateway.model_compute_latency", "s", "Mean per-step compute time of the slowest model of the combination, per generation, by model");
        ActiveGenerations = meter.CreateUpDownCounter<long>("proxyorleans.gateway.active_generations", "{generation}", "Generations running now, by model");
    }

    public void Reject(string reason) => Rejections.Add(1, new KeyValuePair<string, object?>("reason", reason));

    /// <summary>Tokens of one request: by model on the public meter, by model and tenant on the tenant meter.</summary>
    public void Tokens(string model, string tenant, long prompt, long completion)
    {
        var modelTag = new KeyValuePair<string, object?>("model", model);
        var tenantTag = new KeyValuePair<string, object?>("tenant", tenant);
        PromptTokens.Add(prompt, modelTag);
        CompletionTokens.Add(completion, modelTag);
        TenantPromptTokens.Add(prompt, modelTag, tenantTag);
        TenantCompletionTokens.Add(completion, modelTag, tenantTag);
    }

    public void Dispose()
    {
        meter.Dispose();
        tenantMeter.Dispose();
    }
}
