using System.Collections;
using System.Diagnostics;
using System.Text;

namespace ProxyOrleans.Deploy.Tests;

/// <summary>
/// A host (silo or gateway) started as its container starts it: `dotnet ProxyOrleans.X.dll` from the app folder,
/// no arguments, only the environment the manifests give it (inherited ProxyOrleans/Orleans/ASP.NET variables removed).
/// </summary>
public sealed class HostProcess : IDisposable
{
    readonly Process process;
    readonly StringBuilder output = new();
    public string Name { get; }

    public HostProcess(string name, string project, IReadOnlyDictionary<string, string> environment)
    {
        Name = name;
        var dll = BuiltDll(project);
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(dll)!, // the image's WORKDIR is the app folder
        };
        psi.ArgumentList.Add(dll);
        foreach (var key in psi.Environment.Keys.ToList())
            if (key.StartsWith("ProxyOrleans", StringComparison.OrdinalIgnoreCase) || key.StartsWith("Orleans", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase) || key is "POD_NAME" or "POD_IP")
                psi.Environment.Remove(key);
        foreach (var (k, v) in environment) psi.Environment[k] = v;
        process = Process.Start(psi)!;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public bool HasExited => process.HasExited;
    public int ExitCode => process.ExitCode;

    /// <summary>The last lines the silo wrote (for failure messages).</summary>
    public string Tail(int lines = 40)
    {
        lock (output)
        {
            var all = output.ToString().Split('\n');
            return $"--- {Name} (last {lines} lines) ---\n" + string.Join('\n', all.TakeLast(lines));
        }
    }

    /// <summary>SIGTERM, as the kubelet stops a container; returns whether it exited within the timeout.</summary>
    public bool Terminate(TimeSpan timeout)
    {
        if (process.HasExited) return true;
        using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString()])) kill.WaitForExit();
        return process.WaitForExit(timeout);
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
        var dir = Repo.PathOf("src", project, "bin", configuration, "net10.0", "linux-x64");
        var dll = Path.Combine(dir, $"ProxyOrleans.{project}.dll");
        if (!File.Exists(dll))
            throw new FileNotFoundException($"{dll} is missing: build tests/Deploy.Tests (it builds src/{project}) in configuration {configuration}.");
        return dll;
    }
}
