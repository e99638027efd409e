using System.CommandLine;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;

namespace ProxyOrleans.Client;

/// <summary>Options and code to connect to a cluster as an Orleans client: localhost gateways or Redis clustering.</summary>
public sealed class ClusterConnection
{
    public static readonly Option<int[]> GatewayPorts = new("--gateway-port")
    {
        Description = "Localhost clustering: the silos' gateway ports (default 30000).", AllowMultipleArgumentsPerToken = true,
    };
    public static readonly Option<string?> Redis = new("--redis") { Description = "Redis clustering: connection string (e.g. localhost:6379)." };
    public static readonly Option<string> ClusterId = new("--cluster-id") { Description = "Cluster id.", DefaultValueFactory = _ => "proxyorleans" };

    public static void AddOptions(Command c)
    {
        c.Options.Add(GatewayPorts);
        c.Options.Add(Redis);
        c.Options.Add(ClusterId);
    }

    /// <summary>Connects (with the configured clustering) and returns the started host; dispose it to disconnect.</summary>
    public static async Task<IHost> ConnectAsync(int[] gatewayPorts, string? redis, string clusterId = "proxyorleans", CancellationToken ct = default,
        TimeSpan? responseTimeout = null)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.UseOrleansClient(client =>
        {
            if (responseTimeout is { } rt) client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = rt);
            if (redis is not null)
            {
                client.UseRedisClustering(redis);
                client.Configure<ClusterOptions>(o => { o.ClusterId = clusterId; o.ServiceId = "proxyorleans"; });
            }
            else
            {
                var ports = gatewayPorts.Length > 0 ? gatewayPorts : [30000];
                client.UseStaticClustering(ports.Select(p => new IPEndPoint(IPAddress.Loopback, p)).ToArray());
                client.Configure<ClusterOptions>(o => { o.ClusterId = clusterId; o.ServiceId = "proxyorleans"; });
            }
        });
        var host = builder.Build();
        try { await host.StartAsync(ct); }
        catch (Exception e)
        {
            host.Dispose();
            throw new InvalidOperationException(
                $"Could not connect to the cluster ({(redis is not null ? "redis " + redis : "gateways " + string.Join(",", gatewayPorts.DefaultIfEmpty(30000)))}): {e.Message}. " +
                "Start a silo first: dotnet run --project src/Silo -c Release", e);
        }
        return host;
    }

    public static Task<IHost> ConnectAsync(ParseResult p, CancellationToken ct) =>
        ConnectAsync(p.GetValue(GatewayPorts) ?? [], p.GetValue(Redis), p.GetValue(ClusterId)!, ct);
}
