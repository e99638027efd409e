using System.Diagnostics.Metrics;
using ProxyOrleans.Grains.Models;

namespace ProxyOrleans.Silo;

/// <summary>
/// Per hosted model, read from its worker at each scrape: sessions, KV bytes, steps, batches, prefills, compute time.
/// Exported on the silo's /metrics by the OpenTelemetry Prometheus exporter, with Orleans' own meter.
/// </summary>
public sealed class SiloMetrics : IDisposable
{
    public const string MeterName = "ProxyOrleans.Silo";
    readonly Meter meter = new(MeterName);

    public SiloMetrics(HostedModels hosted)
    {
        IEnumerable<Measurement<T>> Per<T>(Func<ModelWorker, T> read) where T : struct =>
            hosted.Workers.Select(w => new Measurement<T>(read(w), new KeyValuePair<string, object?>("model", w.Name)));
        meter.CreateObservableGauge("proxyorleans_model_sessions", () => Per(w => (long)w.ActiveSessions), description: "Open generation sessions");
        meter.CreateObservableGauge("proxyorleans_model_kv_reserved_bytes", () => Per(w => w.ReservedBytes), description: "KV cache bytes reserved by open sessions");
        meter.CreateObservableGauge("proxyorleans_model_kv_budget_bytes", () => Per(w => w.BudgetBytes), description: "KV cache budget");
        meter.CreateObservableCounter("proxyorleans_model_steps", () => Per(w => Interlocked.Read(ref w.Steps)), description: "Decode steps run (sessions x batches)");
        meter.CreateObservableCounter("proxyorleans_model_batches", () => Per(w => Interlocked.Read(ref w.Batches)), description: "Batched forwards run");
        meter.CreateObservableCounter("proxyorleans_model_prefills", () => Per(w => Interlocked.Read(ref w.Prefills)), description: "Prefills run");
        meter.CreateObservableCounter("proxyorleans_model_compute_seconds", () => Per(w => Volatile.Read(ref w.ComputeMs) / 1000), description: "Time spent in the model");
        meter.CreateObservableCounter("proxyorleans_model_host_compute_seconds", () => Per(w => w.HostComputeMs / 1000),
            description: "Time the model's forwards ran on this host's CPU (less than compute time on a simulated accelerator)");
    }

    public void Dispose() => meter.Dispose();
}
