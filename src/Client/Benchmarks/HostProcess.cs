using System.Diagnostics;
using System.Text;

namespace ProxyOrleans.Client.Benchmarks;

/// <summary>
/// The one way a host process (silo, gateway or the client) is started, by the tests and by `bench cluster` and `chaos`
/// alike: `dotnet X.dll [arguments]`, configured through the arguments and environment given. Captures its output
/// (optionally echoing each line to a log); SIGTERM, SIGKILL; killed on dispose. Several silo processes clustered
/// together: <see cref="LoopbackCluster"/>; a gateway process of such a cluster: <see cref="GatewayProcess"/>.
/// </summary>
public sealed class HostProcess : IDisposable
{
    readonly Process process;
    readonly StringBuilder output = new(), errors = new();
    readonly List<string> lines = [];
    public string Name { get; }

    /// <param name="keepInheritedSettings">
    /// False (a test's host): the ProxyOrleans, Orleans and ASP.NET variables of this process's environment and the pod's
    /// downward-API variables are removed, so that a developer's shell cannot leak into the test. True (the bench
    /// commands' hosts): they are kept, as a person's shell or the image (ProxyOrleans__Device=cuda) configures them.
    /// </param>
    /// <param name="log">Where each line is echoed as it comes, "[name] line" (stderr: "[name!] line"); null: kept only.</param>
    public HostProcess(string name, string dll, IReadOnlyDictionary<string, string> environment, string workingDirectory,
        IEnumerable<string>? arguments = null, bool keepInheritedSettings = false, TextWriter? log = null)
    {
        Name = name;
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        psi.ArgumentList.Add(dll);
        foreach (var a in arguments ?? []) psi.ArgumentList.Add(a);
        if (!keepInheritedSettings)
            foreach (var key in psi.Environment.Keys.ToList())
                if (key.StartsWith("ProxyOrleans", StringComparison.OrdinalIgnoreCase) || key.StartsWith("Orleans", StringComparison.OrdinalIgnoreCase)
                    || key.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase) || key is "POD_NAME" or "POD_IP")
                    psi.Environment.Remove(key);
        foreach (var (k, v) in environment) psi.Environment[k] = v;
        process = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {name} (dotnet {dll}).");
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (output) { output.AppendLine(e.Data); lines.Add(e.Data); }
            log?.WriteLine($"[{name}] {e.Data}");
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (output) { output.AppendLine(e.Data); errors.AppendLine(e.Data); }
            log?.WriteLine($"[{name}!] {e.Data}");
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    /// <summary>src/&lt;project&gt;'s build started from its app folder, as the image's WORKDIR is the app folder.</summary>
    public static HostProcess FromBuild(string name, string project, IReadOnlyDictionary<string, string> environment)
    {
        var dll = RepositoryLayout.BuiltDll(project);
        return new HostProcess(name, dll, environment, Path.GetDirectoryName(dll)!);
    }

    public bool HasExited => process.HasExited;
    /// <summary>CPU time the process has used so far (user and system, all threads).</summary>
    public TimeSpan CpuTime { get { process.Refresh(); return process.TotalProcessorTime; } }
    public int ExitCode => process.ExitCode;

    /// <summary>Everything the host wrote so far, stdout and stderr interleaved.</summary>
    public string Log { get { lock (output) return output.ToString(); } }

    /// <summary>What the host wrote to stderr so far.</summary>
    public string StandardError { get { lock (output) return errors.ToString(); } }

    /// <summary>The lines the host wrote to stdout so far.</summary>
    public IReadOnlyList<string> StandardOutputLines { get { lock (output) return [.. lines]; } }

    /// <summary>
    /// The first stdout line that matches, waiting for it up to <paramref name="timeout"/>; null if the host exited
    /// or the time ran out without one.
    /// </summary>
    public async Task<string?> WaitForOutputLineAsync(Func<string, bool> match, TimeSpan timeout, CancellationToken ct = default)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            bool exited = process.HasExited;
            if (exited) process.WaitForExit(); // the output is read to its end once the process has exited
            lock (output) if (lines.FirstOrDefault(match) is { } line) return line;
            if (exited || sw.Elapsed > timeout) return null;
            await Task.Delay(50, ct);
        }
    }

    /// <summary>Waits for the host to exit by itself; false if it still runs after <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        try { await process.WaitForExitAsync().WaitAsync(timeout); return true; }
        catch (TimeoutException) { return false; }
    }

    /// <summary>The last lines the host wrote (for failure messages).</summary>
    public string Tail(int lines = 40)
    {
        lock (output)
        {
            var all = output.ToString().Split('\n');
            return $"--- {Name} (last {lines} lines) ---\n" + string.Join('\n', all.TakeLast(lines));
        }
    }

    /// <summary>Sends SIGTERM (as the kubelet in a rolling update, or a terminal's Ctrl+C) and returns: the host drains, then exits.</summary>
    public void SendTerminate()
    {
        if (!process.HasExited && SendSignal(process.Id, SigTerm) != 0 && !process.HasExited)
            throw new InvalidOperationException($"SIGTERM to {Name} (pid {process.Id}) failed.");
    }

    /// <summary>SIGTERM; returns whether the host exited within the timeout.</summary>
    public bool Terminate(TimeSpan timeout)
    {
        SendTerminate();
        return process.WaitForExit(timeout);
    }

    /// <summary><see cref="Terminate"/> without blocking a thread while the host drains.</summary>
    public async Task<bool> TerminateAsync(TimeSpan timeout)
    {
        SendTerminate();
        return await WaitForExitAsync(timeout);
    }

    /// <summary>SIGKILL: no drain, no release of leases, sockets closed by the kernel (a crashed or OOM-killed pod).</summary>
    public void Kill(TimeSpan timeout)
    {
        if (process.HasExited) return;
        process.Kill(entireProcessTree: true);
        process.WaitForExit(timeout);
    }

    public void Dispose()
    {
        try { if (!process.HasExited) { process.Kill(entireProcessTree: true); process.WaitForExit(10_000); } }
        catch (InvalidOperationException) { } // exited in between
        finally { process.Dispose(); }
    }

    private const int SigTerm = 15;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);
}
