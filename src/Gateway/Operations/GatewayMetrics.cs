using System.Diagnostics.Metrics;

namespace ProxyOrleans.Gateway.Operations;

/// <summary>Gateway instruments (meter "ProxyOrleans.Gateway"), exported by OpenTelemetry's Prometheus endpoint /metrics.</summary>
public sealed class GatewayMetrics : IDisposable
{
    public const string MeterName = "ProxyOrleans.Gateway";
    readonly Meter meter;

    public Counter<long> Requests { get; }
    public Counter<long> PromptTokens { get; }
    public Counter<long> CompletionTokens { get; }
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
        PromptTokens = meter.CreateCounter<long>("proxyorleans.gateway.prompt_tokens", "{token}", "Prompt tokens, by model and tenant");
        CompletionTokens = meter.CreateCounter<long>("proxyorleans.gateway.completion_tokens", "{token}", "Generated tokens, by model and tenant");
        Rejections = meter.CreateCounter<long>("proxyorleans.gateway.rejections", "{request}", "Requests refused, by reason");
        TimeToFirstToken = meter.CreateHistogram<double>("proxyorleans.gateway.time_to_first_token", "s", "From request arrival to the first generated text, by model");
        StepLatency = meter.CreateHistogram<double>("proxyorleans.gateway.step_latency", "s", "Time between consecutive tokens of one generation as the gateway sees them, by model");
        RequestDuration = meter.CreateHistogram<double>("proxyorleans.gateway.request_duration", "s", "Whole request, by endpoint and model");
        ClusterStepLatency = meter.CreateHistogram<double>("proxyorleans.gateway.cluster_step_latency", "s", "Mean decode step time measured by the coordinator grain, per generation, by model");
        ModelComputeLatency = meter.CreateHistogram<double>("proxyorleans.gateway.model_compute_latency", "s", "Mean per-step compute time of the slowest model of the combination, per generation, by model");
        ActiveGenerations = meter.CreateUpDownCounter<long>("proxyorleans.gateway.active_generations", "{generation}", "Generations running now, by model");
    }

    public void Reject(string reason) => Rejections.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void Dispose() => meter.Dispose();
}
