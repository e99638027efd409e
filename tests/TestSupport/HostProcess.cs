using System.Diagnostics;
using System.Text;

namespace ProxyOrleans.TestSupport;

/// <summary>
/// The one way the tests start a host process (silo or gateway): `dotnet ProxyOrleans.X.dll [arguments]`, configured
/// only through the arguments and environment given (inherited ProxyOrleans/Orleans/ASP.NET variables and the pod's
/// downward-API variables removed, so that a developer's shell cannot leak into the test). Captures its output; killed
/// on dispose. Several silo processes clustered together: the client's LoopbackCluster (src/Client/Benchmarks).
/// </summary>
public sealed class HostProcess : IDisposable
{
    readonly Process process;
    readonly StringBuilder output = new(), errors = new();
    readonly List<string> lines = [];
    public string Name { get; }

    public HostProcess(string name, string dll, IReadOnlyDictionary<string, string> environment, string workingDirectory,
        IEnumerable<string>? arguments = null)
    {
        Name = name;
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory,
        };
        psi.ArgumentList.Add(dll);
        foreach (var a in arguments ?? []) psi.ArgumentList.Add(a);
        foreach (var key in psi.Environment.Keys.ToList())
            if (key.StartsWith("ProxyOrleans", StringComparison.OrdinalIgnoreCase) || key.StartsWith("Orleans", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase) || key is "POD_NAME" or "POD_IP")
                psi.Environment.Remove(key);
        foreach (var (k, v) in environment) psi.Environment[k] = v;
        process = Process.Start(psi)!;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) { output.AppendLine(e.Data); lines.Add(e.Data); } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) { output.AppendLine(e.Data); errors.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    /// <summary>src/&lt;project&gt;'s build started from its app folder, as the image's WORKDIR is the app folder.</summary>
    public static HostProcess FromBuild(string name, string project, IReadOnlyDictionary<string, string> environment)
    {
        var dll = BuiltDll(project);
        return new HostProcess(name, dll, environment, Path.GetDirectoryName(dll)!);
    }

    public bool HasExited => process.HasExited;
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
    public async Task<string?> WaitForOutputLineAsync(Func<string, bool> match, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            bool exited = process.HasExited;
            if (exited) process.WaitForExit(); // the output is read to its end once the process has exited
            lock (output) if (lines.FirstOrDefault(match) is { } line) return line;
            if (exited || sw.Elapsed > timeout) return null;
            await Task.Delay(50);
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

    /// <summary>SIGTERM, as the kubelet or a terminal's Ctrl+C stops it; returns whether it exited within the timeout.</summary>
    public bool Terminate(TimeSpan timeout)
    {
        if (process.HasExited) return true;
        using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString()])) kill.WaitForExit();
        return process.WaitForExit(timeout);
    }

    /// <summary><see cref="Terminate"/> without blocking a thread while the host drains.</summary>
    public async Task<bool> TerminateAsync(TimeSpan timeout)
    {
        if (process.HasExited) return true;
        using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString()])) await kill.WaitForExitAsync();
        try { await process.WaitForExitAsync().WaitAsync(timeout); return true; }
        catch (TimeoutException) { return false; }
    }

    /// <summary>SIGKILL: no drain, no release of leases, sockets closed by the kernel (a crashed or OOM-killed pod).</summary>
    public void Kill(TimeSpan timeout)
    {
        if (process.HasExited) return;
        process.Kill();
        process.WaitForExit(timeout);
    }

    public void Dispose()
    {
        try { if (!process.HasExited) { process.Kill(entireProcessTree: true); process.WaitForExit(5000); } }
        finally { process.Dispose(); }
    }

    /// <summary>The build of src/&lt;project&gt; next to this test build (same configuration): what the image publishes.</summary>
    public static string BuiltDll(string project)
    {
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Parent!.Name; // bin/<cfg>/net10.0/linux-x64/
        var dir = Path.Combine(TestEnvironment.RepoRoot(), "src", project, "bin", configuration, "net10.0", "linux-x64");
        var dll = Path.Combine(dir, $"ProxyOrleans.{project}.dll");
        if (!File.Exists(dll))
            throw new FileNotFoundException($"{dll} is missing: build src/{project} (tests/Deploy.Tests builds it) in configuration {configuration}.");
        return dll;
    }
}
