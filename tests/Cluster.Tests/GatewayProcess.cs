using System.Diagnostics;
using System.Text;
using ProxyOrleans.Client.Benchmarks;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>
/// The gateway (src/Gateway, built with this project) as its own process on a free loopback port, an Orleans client of a
/// <see cref="LoopbackCluster"/>'s silos; configured with --Section:Key=value arguments as a person would start it.
/// </summary>
public sealed class GatewayProcess : IDisposable
{
    readonly Process process;
    readonly StringBuilder output = new();
    public string Name { get; }
    public int Port { get; }
    public Uri BaseUri => new($"http://127.0.0.1:{Port}");

    public GatewayProcess(string name, LoopbackCluster cluster, IReadOnlyDictionary<string, string> config)
    {
        Name = name;
        Port = LoopbackPorts.Next();
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Dll());
        psi.ArgumentList.Add("--urls");
        psi.ArgumentList.Add(BaseUri.ToString().TrimEnd('/'));
        var args = new Dictionary<string, string>
        {
            ["ProxyOrleans:Clustering"] = "localhost",
            ["ProxyOrleans:ClusterId"] = cluster.ClusterId,
            ["ProxyOrleans:Gateway:JsonLogs"] = "false",
        };
        for (int i = 0; i < cluster.GatewayPorts.Count; i++) args[$"ProxyOrleans:GatewayPorts:{i}"] = cluster.GatewayPorts[i].ToString();
        foreach (var (k, v) in config) args[k] = v;
        foreach (var (k, v) in args) psi.ArgumentList.Add($"--{k}={v}");
        process = Process.Start(psi) ?? throw new InvalidOperationException("Could not start the gateway process.");
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    static string Dll()
    {
        var silo = LoopbackCluster.FindSiloDll();
        var bin = Path.GetRelativePath(Path.Combine(LoopbackCluster.FindRepoRoot(), "src", "Silo"), Path.GetDirectoryName(silo)!);
        var dll = Path.Combine(LoopbackCluster.FindRepoRoot(), "src", "Gateway", bin, "ProxyOrleans.Gateway.dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException($"{dll} is missing: build tests/Cluster.Tests (it builds src/Gateway).");
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
