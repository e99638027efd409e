using OpenTelemetry.Trace;

namespace ProxyOrleans.Gateway.Operations;

/// <summary>
/// Exports traces over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (the OpenTelemetry convention; the exporter also
/// reads OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_SERVICE_NAME, ...). Without it nothing listens: spans cost nothing.
/// </summary>
public static class TraceExport
{
    public static bool Enabled(IConfiguration config) => !string.IsNullOrWhiteSpace(config["OTEL_EXPORTER_OTLP_ENDPOINT"]);

    public static void AddTo(IServiceCollection services) =>
        services.AddOpenTelemetry().WithTracing(t => t.AddSource(Tracing.AllSources).AddOtlpExporter());
}
