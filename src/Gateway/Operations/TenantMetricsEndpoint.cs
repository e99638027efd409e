using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using OpenTelemetry;
using OpenTelemetry.Metrics;

namespace ProxyOrleans.Gateway.Operations;

/// <summary>
/// Per-tenant series (meter ProxyOrleans.Gateway.Tenants) at /metrics of one internal port only,
/// ProxyOrleans:Gateway:TenantMetricsPort (0, the default: not served anywhere). The gateway must also listen there
/// (ASPNETCORE_HTTP_PORTS=8080;9464); the API port's /metrics never names a tenant. The internal port is meant to be
/// reachable only by the monitoring system (a NetworkPolicy rule: deploy/k8s/README.md, "Metrics").
/// </summary>
public static class TenantMetricsEndpoint
{
    public const string PortKey = "ProxyOrleans:Gateway:TenantMetricsPort";
    public const string Path = "/metrics";

    /// <summary>The configured port, 0 when off; anything but 0..65535 is refused at start.</summary>
    public static int Port(IConfiguration config)
    {
        var raw = config[PortKey];
        if (string.IsNullOrWhiteSpace(raw)) return 0;
        if (!int.TryParse(raw, out var port) || port is < 0 or > 65535)
            throw new InvalidOperationException($"{PortKey} is '{raw}': give a TCP port (1-65535) the gateway also listens on, or 0 for none.");
        return port;
    }

    public static void Map(WebApplication app, int port)
    {
        // A provider of its own: the main one (the API port's /metrics) never sees the tenant meter.
        var provider = Sdk.CreateMeterProviderBuilder().AddMeter(GatewayMetrics.TenantMeterName).AddPrometheusExporter().Build();
        app.Lifetime.ApplicationStopped.Register(provider.Dispose);
        // The port the connection arrived on, not the Host header, which a client chooses.
        app.UseOpenTelemetryPrometheusScrapingEndpoint(provider,
            ctx => ctx.Connection.LocalPort == port && ctx.Request.Path == Path, path: null, configureBranchedPipeline: null, optionsName: null);
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
            if (!addresses.Any(a => Uri.TryCreate(a.Replace("://*", "://0.0.0.0").Replace("://+", "://0.0.0.0"), UriKind.Absolute, out var u) && u.Port == port))
                app.Logger.LogError("{Key} is {Port} but the gateway does not listen there ({Addresses}): add the port to ASPNETCORE_HTTP_PORTS " +
                                    "(e.g. 8080;{Port}), or per-tenant metrics are served nowhere.", PortKey, port, string.Join(", ", addresses), port);
        });
    }
}
