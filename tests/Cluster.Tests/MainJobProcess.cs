using System.Diagnostics;
using ProxyOrleans.Client.Benchmarks;
using ProxyOrleans.TestSupport;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>
/// The main job as a newcomer starts it: the built silo host with no arguments, from the repository root (bundled
/// demo models). Only its ports move, through the environment, so that the command line stays empty and a test
/// cannot collide with a main job someone is running; <paramref name="environment"/> adds settings (a tenants file).
/// </summary>
public sealed class MainJobProcess : IDisposable
{
    readonly HostProcess host;
    public int ApiPort { get; } = LoopbackPorts.Next();
    public Uri BaseUri => new($"http://127.0.0.1:{ApiPort}");

    public MainJobProcess(IReadOnlyDictionary<string, string>? environment = null)
    {
        var settings = new Dictionary<string, string>
        {
            ["ProxyOrleans__SiloPort"] = LoopbackPorts.Next().ToString(),
            ["ProxyOrleans__GatewayPort"] = LoopbackPorts.Next().ToString(),
            ["ProxyOrleans__HttpPort"] = LoopbackPorts.Next().ToString(),
            ["ProxyOrleans__ApiUrl"] = BaseUri.ToString().TrimEnd('/'),
            ["ProxyOrleans__Threads"] = "1",
        };
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) settings[k] = v;
        host = new HostProcess("main job", RepositoryLayout.BuiltDll("Silo"), settings, RepositoryLayout.Root());
    }

    public string Log => host.Log;
    public bool HasExited => host.HasExited;
    public int ExitCode => host.ExitCode;

    /// <summary>Waits until the API answers GET /healthz.</summary>
    public async Task WaitUntilServingAsync(TimeSpan timeout)
    {
        using var http = new HttpClient { BaseAddress = BaseUri, Timeout = TimeSpan.FromSeconds(5) };
        var sw = Stopwatch.StartNew();
        while (true)
        {
            if (host.HasExited) throw new InvalidOperationException($"The main job exited with {host.ExitCode}:\n{Log}");
            if (sw.Elapsed > timeout) throw new TimeoutException($"The main job's API did not answer within {timeout.TotalSeconds:F0} s:\n{Log}");
            try { if ((await http.GetAsync("/healthz")).IsSuccessStatusCode) return; }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            await Task.Delay(300);
        }
    }

    /// <summary>SIGTERM, as a terminal's Ctrl+C or a service manager stops it; returns whether it exited in time.</summary>
    public Task<bool> TerminateAsync(TimeSpan timeout) => host.TerminateAsync(timeout);

    public void Dispose() => host.Dispose();
}
