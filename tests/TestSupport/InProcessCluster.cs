using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;
using ProxyOrleans.Grains.Hosting;
using ProxyOrleans.Grains.Models;

namespace ProxyOrleans.TestSupport;

/// <summary>
/// An in-process Orleans test cluster (Orleans.TestingHost) whose silo i hosts modelsPerSilo[i], read from
/// modelPath(name), through the same hosting code as src/Silo.
/// </summary>
public sealed class InProcessCluster : IAsyncDisposable
{
    public InProcessTestCluster Cluster { get; }
    public IGrainFactory Grains => Cluster.Client;
    private readonly string[][] _models;

    private InProcessCluster(InProcessTestCluster cluster, string[][] models) { Cluster = cluster; _models = models; }

    public static async Task<InProcessCluster> StartAsync(Func<string, string> modelPath, params string[][] modelsPerSilo)
    {
        var builder = new InProcessTestClusterBuilder((short)modelsPerSilo.Length);
        builder.ConfigureSilo((options, silo) =>
        {
            int index = int.Parse(options.SiloName.Split('_')[1]);
            var models = index < modelsPerSilo.Length ? modelsPerSilo[index] : [];
            // No gateway hand-off: every test stops every silo gracefully at its end, and the hand-off's wait would add
            // 2 s per silo to each; it is measured with real silo processes (RollingRestartTests).
            var config = new Dictionary<string, string?>
            {
                ["ProxyOrleans:SessionIdleTimeoutSeconds"] = "60", ["ProxyOrleans:DrainTimeoutSeconds"] = "5", ["ProxyOrleans:GatewayHandOffSeconds"] = "0",
            };
            for (int i = 0; i < models.Length; i++)
            {
                config[$"ProxyOrleans:Models:{i}:Name"] = models[i];
                config[$"ProxyOrleans:Models:{i}:Path"] = modelPath(models[i]);
            }
            silo.AddProxyOrleans(new ConfigurationBuilder().AddInMemoryCollection(config).Build());
            silo.UseFastFailureDetection();
        });
        // A generation's next token normally arrives within milliseconds: notice a dead coordinator's silo quickly.
        builder.ConfigureClient(client =>
        {
            client.Configure<Orleans.Configuration.ClientMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(5));
            client.AddMemoryStreams(ProxyOrleans.Abstractions.StreamNames.Provider); // observers of generation events
        });
        var cluster = builder.Build();
        await cluster.DeployAsync();
        var c = new InProcessCluster(cluster, modelsPerSilo);
        await c.WaitForModelsAsync();
        return c;
    }

    /// <summary>Silo metadata reaches every silo's cache asynchronously: wait until the directory lists all models.</summary>
    public async Task WaitForModelsAsync()
    {
        var want = _models.SelectMany(m => m).Distinct().ToArray();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var ok = true;
            foreach (var silo in Cluster.Silos)
            {
                var dir = silo.ServiceProvider.GetRequiredService<ProxyOrleans.Grains.Placement.ModelDirectory>();
                var hosted = dir.HostedModels().Select(h => h.Name).ToHashSet();
                ok &= want.All(hosted.Contains);
            }
            if (ok) return;
            if (DateTime.UtcNow > deadline) throw new TimeoutException("Silo metadata did not propagate.");
            await Task.Delay(100);
        }
    }

    /// <summary>Index of the silo whose worker for <paramref name="model"/> has an open session.</summary>
    public int SiloWithSession(string model)
    {
        for (int i = 0; i < Cluster.Silos.Count; i++)
            if (Cluster.Silos[i].ServiceProvider.GetRequiredService<HostedModels>().Find(model) is { ActiveSessions: > 0 }) return i;
        return -1;
    }

    public HostedModels Hosted(int silo) => Cluster.Silos[silo].ServiceProvider.GetRequiredService<HostedModels>();

    public async ValueTask DisposeAsync()
    {
        try { await Cluster.StopAllSilosAsync(); } catch { }
        await Cluster.DisposeAsync();
    }
}
