using ProxyOrleans.Client.Benchmarks;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>
/// The gateway (src/Gateway, built with this project) as its own process on a free loopback port, an Orleans client of a
/// <see cref="LoopbackCluster"/>'s silos; configured with --Section:Key=value arguments as a person would start it, and
/// started, watched and stopped through <see cref="HostProcess"/> like every host process of the tests.
/// </summary>
public sealed class GatewayProcess : IDisposable
{
    readonly HostProcess host;
    public string Name => host.Name;
    public int Port { get; }
    public Uri BaseUri => new($"http://127.0.0.1:{Port}");

    public GatewayProcess(string name, LoopbackCluster cluster, IReadOnlyDictionary<string, string> config)
    {
        Port = LoopbackPorts.Next();
        var settings = new Dictionary<string, string>
        {
            ["ProxyOrleans:Clustering"] = "localhost",
            ["ProxyOrleans:ClusterId"] = cluster.ClusterId,
            ["ProxyOrleans:Gateway:JsonLogs"] = "false",
        };
        for (int i = 0; i < cluster.GatewayPorts.Count; i++) settings[$"ProxyOrleans:GatewayPorts:{i}"] = cluster.GatewayPorts[i].ToString();
        foreach (var (k, v) in config) settings[k] = v;
        string[] arguments = ["--urls", BaseUri.ToString().TrimEnd('/'), .. settings.Select(s => $"--{s.Key}={s.Value}")];
        var dll = HostProcess.BuiltDll("Gateway");
        host = new HostProcess(name, dll, new Dictionary<string, string>(), Path.GetDirectoryName(dll)!, arguments);
    }

    /// <summary>Waits for GET /readyz = 200 (the Orleans client is connected and every combination's models are hosted).</summary>
    public async Task WaitReadyAsync(TimeSpan timeout)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (host.HasExited) throw new InvalidOperationException($"gateway {Name} exited with {host.ExitCode}:\n{Tail()}");
            try { if ((await http.GetAsync(new Uri(BaseUri, "/readyz"))).IsSuccessStatusCode) return; }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"gateway {Name} not ready after {timeout.TotalSeconds:F0} s:\n{Tail()}");
            await Task.Delay(200);
        }
    }

    /// <summary>SIGKILL: no drain, no release of leases, sockets closed by the kernel — a crashed or OOM-killed pod.</summary>
    public void Kill() => host.Kill(TimeSpan.FromSeconds(10));

    public string Tail(int lines = 40) => host.Tail(lines);

    public void Dispose() => host.Dispose();
}
