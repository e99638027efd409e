namespace ProxyOrleans.Client.Benchmarks;

/// <summary>
/// The gateway (src/Gateway, built with the silo host) as its own <see cref="HostProcess"/> on a free loopback port, an
/// Orleans client of a <see cref="LoopbackCluster"/>'s silos; configured with --Section:Key=value arguments as a person
/// would start it. Used by the chaos command and the multi-process tests.
/// </summary>
public sealed class GatewayProcess : IDisposable
{
    readonly HostProcess host;
    public string Name => host.Name;
    public int Port { get; }
    public Uri BaseUri => new($"http://127.0.0.1:{Port}");

    /// <summary>A gateway reaching the running <paramref name="cluster"/> through its silos' gateway ports (static list).</summary>
    /// <param name="port">Default: a free one. Given: a replacement process on its predecessor's port (that one must have exited).</param>
    public GatewayProcess(string name, LoopbackCluster cluster, IReadOnlyDictionary<string, string> config, int? port = null)
        : this(name, cluster.ClusterId, StaticGateways(cluster).Concat(config).ToDictionary(), port) { }

    /// <summary>
    /// A gateway of cluster <paramref name="clusterId"/>, found the way <paramref name="config"/> says (e.g.
    /// ProxyOrleans:Clustering=redis and ProxyOrleans:Redis): it may start before the silos, it connects once they are up.
    /// </summary>
    public GatewayProcess(string name, string clusterId, IReadOnlyDictionary<string, string> config, int? port = null)
    {
        Port = port ?? LoopbackPorts.Next();
        var settings = new Dictionary<string, string>
        {
            ["ProxyOrleans:Clustering"] = "localhost",
            ["ProxyOrleans:ClusterId"] = clusterId,
            ["ProxyOrleans:Gateway:JsonLogs"] = "false",
        };
        foreach (var (k, v) in config) settings[k] = v;
        string[] arguments = ["--urls", BaseUri.ToString().TrimEnd('/'), .. settings.Select(kv => $"--{kv.Key}={kv.Value}")];
        // The shell's settings are kept, as for the loopback cluster's silos.
        host = new HostProcess(name, RepositoryLayout.BuiltDll("Gateway"), new Dictionary<string, string>(), Environment.CurrentDirectory,
            arguments, keepInheritedSettings: true);
    }

    static IEnumerable<KeyValuePair<string, string>> StaticGateways(LoopbackCluster cluster) =>
        cluster.GatewayPorts.Select((port, i) => KeyValuePair.Create($"ProxyOrleans:GatewayPorts:{i}", port.ToString()));

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

    /// <summary>SIGTERM, as Kubernetes stops a pod: the gateway drains (docs/gateway.md, "Stopping a gateway"), then exits.</summary>
    public void Terminate() => host.SendTerminate();

    /// <summary>The exit code once the process has exited, or null if it still runs after <paramref name="timeout"/>.</summary>
    public async Task<int?> WaitForExitAsync(TimeSpan timeout) => await host.WaitForExitAsync(timeout) ? host.ExitCode : null;

    public bool HasExited => host.HasExited;

    public string Tail(int lines = 40) => host.Tail(lines);

    public void Dispose() => host.Dispose();
}
