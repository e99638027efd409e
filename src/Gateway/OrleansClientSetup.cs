using System.Net;
using Orleans.Configuration;

namespace ProxyOrleans.Gateway;

/// <summary>
/// The gateway's Orleans client, configured by the shared conventions: ProxyOrleans:Clustering = localhost | redis,
/// ProxyOrleans:Redis and ProxyOrleans:RedisPassword (RedisConnection), ProxyOrleans:GatewayPort (localhost; several silos: ProxyOrleans:GatewayPorts:0..n),
/// ProxyOrleans:ClusterId, ProxyOrleans:ServiceId, ProxyOrleans:ResponseTimeoutSeconds.
/// </summary>
public static class OrleansClientSetup
{
    public static void Configure(IClientBuilder client, IConfiguration config)
    {
        var clusterId = config["ProxyOrleans:ClusterId"] ?? "proxyorleans";
        var serviceId = config["ProxyOrleans:ServiceId"] ?? "proxyorleans";
        var clustering = (config["ProxyOrleans:Clustering"] ?? "localhost").ToLowerInvariant();
        switch (clustering)
        {
            case "localhost":
                var ports = config.GetSection("ProxyOrleans:GatewayPorts").Get<int[]>() is { Length: > 0 } many ? many
                    : [config.GetValue("ProxyOrleans:GatewayPort", 30000)];
                client.UseStaticClustering(ports.Select(p => new IPEndPoint(IPAddress.Loopback, p)).ToArray());
                break;
            case "redis":
                var redis = RedisConnection.Options(config);
                client.UseRedisClustering(o => o.ConfigurationOptions = redis);
                break;
            default:
                throw new InvalidOperationException($"ProxyOrleans:Clustering is '{clustering}'; use 'localhost' or 'redis'.");
        }
        client.Configure<ClusterOptions>(o => { o.ClusterId = clusterId; o.ServiceId = serviceId; });
        // A call in flight to a silo that dies fails only after this (an Orleans client is not told of the death), so a
        // stream whose coordinator died resumes elsewhere only then. Orleans' default is 30 s; every grain call, a
        // prefill included, must answer within it.
        if (config["ProxyOrleans:ResponseTimeoutSeconds"] is { } timeoutText)
        {
            if (!double.TryParse(timeoutText, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var seconds)
                || !double.IsFinite(seconds) || seconds <= 0)
                throw new InvalidOperationException($"ProxyOrleans:ResponseTimeoutSeconds is '{timeoutText}': give a positive number of seconds (Orleans' default: 30).");
            client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(seconds));
        }
        client.AddActivityPropagation(); // the request's trace continues into the coordinator and the models
        // Keep trying while the silos are not up yet (pods start in any order); /readyz says 503 meanwhile.
        client.UseConnectionRetryFilter(async (_, ct) => { await Task.Delay(TimeSpan.FromSeconds(2), ct); return true; });
    }
}
