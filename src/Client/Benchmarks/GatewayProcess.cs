using System.Diagnostics;
using System.Text;

namespace ProxyOrleans.Client.Benchmarks;

/// <summary>
/// The gateway (src/Gateway, built with the silo host) as its own process on a free loopback port, an Orleans client of
/// a <see cref="LoopbackCluster"/>'s silos; configured with --Section:Key=value arguments as a person would start it.
/// Used by the chaos command and the multi-process tests.
/// </summary>
public sealed class GatewayProcess : IDisposable
{
    readonly Process process;
    readonly StringBuilder output = new();
    public string Name { get; }
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
        Name = name;
        Port = port ?? LoopbackPorts.Next();
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Dll());
        psi.ArgumentList.Add("--urls");
        psi.ArgumentList.Add(BaseUri.ToString().TrimEnd('/'));
        var args = new Dictionary<string, string>
        {
            ["ProxyOrleans:Clustering"] = "localhost",
            ["ProxyOrleans:ClusterId"] = clusterId,
            ["ProxyOrleans:Gateway:JsonLogs"] = "false",
        };
        foreach (var (k, v) in config) args[k] = v;
        foreach (var (k, v) in args) psi.ArgumentList.Add($"--{k}={v}");
        process = Process.Start(psi) ?? throw new InvalidOperationException("Could not start the gateway process.");
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    static IEnumerable<KeyValuePair<string, string>> StaticGateways(LoopbackCluster cluster) =>
        cluster.GatewayPorts.Select((port, i) => KeyValuePair.Create($"ProxyOrleans:GatewayPorts:{i}", port.ToString()));

    static string Dll()
    {
        var silo = LoopbackCluster.FindSiloDll();
        var bin = Path.GetRelativePath(Path.Combine(LoopbackCluster.FindRepoRoot(), "src", "Silo"), Path.GetDirectoryName(silo)!);
        var dll = Path.Combine(LoopbackCluster.FindRepoRoot(), "src", "Gateway", bin, "ProxyOrleans.Gateway.dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException($"{dll} is missing: run `dotnet build src/Silo -c Release` (it builds src/Gateway).");
    }

    /// <summary>Waits for GET /readyz = 200 (the Orleans client is connected and every combination's models are hosted).</summary>
    public async Task WaitReadyAsync(TimeSpan timeout)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (process.HasExited) throw new InvalidOperationException($"gateway {Name} exited with {process.ExitCode}:\n{Tail()}");
            try { if ((await http.GetAsync(new Uri(BaseUri, "/readyz"))).IsSuccessStatusCode) return; }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"gateway {Name} not ready after {timeout.TotalSeconds:F0} s:\n{Tail()}");
            await Task.Delay(200);
        }
    }

    /// <summary>SIGKILL: no drain, no release of leases, sockets closed by the kernel — a crashed or OOM-killed pod.</summary>
    public void Kill()
    {
        process.Kill();
        process.WaitForExit(10_000);
    }

    /// <summary>SIGTERM, as Kubernetes stops a pod: the gateway drains (docs/gateway.md, "Stopping a gateway"), then exits.</summary>
    public void Terminate()
    {
        if (!process.HasExited && SendSignal(process.Id, 15) != 0) throw new InvalidOperationException($"SIGTERM to gateway {Name} failed.");
    }

    /// <summary>The exit code once the process has exited, or null if it still runs after <paramref name="timeout"/>.</summary>
    public async Task<int?> WaitForExitAsync(TimeSpan timeout)
    {
        try { await process.WaitForExitAsync().WaitAsync(timeout); return process.ExitCode; }
        catch (TimeoutException) { return null; }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    static extern int SendSignal(int pid, int signal);

    public bool HasExited => process.HasExited;

    public string Tail(int lines = 40)
    {
        lock (output)
        {
            var all = output.ToString().Split('\n');
            return $"--- {Name} (last {lines} lines) ---\n" + string.Join('\n', all.TakeLast(lines));
        }
    }

    public void Dispose()
    {
        try { if (!process.HasExited) { process.Kill(); process.WaitForExit(10_000); } } catch (InvalidOperationException) { }
        process.Dispose();
    }
}
