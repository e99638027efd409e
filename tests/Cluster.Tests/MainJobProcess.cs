using System.Diagnostics;
using System.Text;
using ProxyOrleans.Client.Commands;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>
/// The main job as a newcomer starts it: the built silo host with no arguments, from the repository root (bundled
/// demo models). Only its ports move, through the environment, so that the command line stays empty and a test
/// cannot collide with a main job someone is running; <paramref name="environment"/> adds settings (a tenants file).
/// </summary>
public sealed class MainJobProcess : IDisposable
{
    readonly Process process;
    readonly StringBuilder log = new();
    public int ApiPort { get; } = LoopbackPorts.Next();
    public Uri BaseUri => new($"http://127.0.0.1:{ApiPort}");

    public MainJobProcess(IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = LoopbackCluster.FindRepoRoot() };
        psi.ArgumentList.Add(LoopbackCluster.FindSiloDll());
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("ProxyOrleans", StringComparison.OrdinalIgnoreCase) || k.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase)).ToList())
            psi.Environment.Remove(key);
        psi.Environment["ProxyOrleans__SiloPort"] = LoopbackPorts.Next().ToString();
        psi.Environment["ProxyOrleans__GatewayPort"] = LoopbackPorts.Next().ToString();
        psi.Environment["ProxyOrleans__HttpPort"] = LoopbackPorts.Next().ToString();
        psi.Environment["ProxyOrleans__ApiUrl"] = BaseUri.ToString().TrimEnd('/');
        psi.Environment["ProxyOrleans__Threads"] = "1";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        process = Process.Start(psi)!;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Log { get { lock (log) return log.ToString(); } }
    public bool HasExited => process.HasExited;
    public int ExitCode => process.ExitCode;

    /// <summary>Waits until the API answers GET /healthz.</summary>
    public async Task WaitUntilServingAsync(TimeSpan timeout)
    {
        using var http = new HttpClient { BaseAddress = BaseUri, Timeout = TimeSpan.FromSeconds(5) };
        var sw = Stopwatch.StartNew();
        while (true)
        {
            if (process.HasExited) throw new InvalidOperationException($"The main job exited with {process.ExitCode}:\n{Log}");
            if (sw.Elapsed > timeout) throw new TimeoutException($"The main job's API did not answer within {timeout.TotalSeconds:F0} s:\n{Log}");
            try { if ((await http.GetAsync("/healthz")).IsSuccessStatusCode) return; }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            await Task.Delay(300);
        }
    }

    /// <summary>SIGTERM, as a terminal's Ctrl+C or a service manager stops it; returns whether it exited in time.</summary>
    public async Task<bool> TerminateAsync(TimeSpan timeout)
    {
        using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString()])) await kill.WaitForExitAsync();
        try { await process.WaitForExitAsync().WaitAsync(timeout); return true; }
        catch (TimeoutException) { return false; }
    }

    public void Dispose()
    {
        try { if (!process.HasExited) { process.Kill(entireProcessTree: true); process.WaitForExit(5000); } }
        finally { process.Dispose(); }
    }
}
