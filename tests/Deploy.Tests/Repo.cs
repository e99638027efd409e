using System.Diagnostics;
using System.Text;

namespace ProxyOrleans.Deploy.Tests;

/// <summary>Paths in the repository and a way to run the external tools the deploy tests use.</summary>
public static class Repo
{
    public static readonly string Root = ProxyOrleans.Client.Benchmarks.RepositoryLayout.Root();

    public static string PathOf(params string[] parts) => Path.Combine([Root, .. parts]);

    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    /// <summary>Runs a program to completion; a missing program is a clear failure naming the install step.</summary>
    public static Result Run(string program, IEnumerable<string> args, string? workingDirectory = null, int timeoutMs = 120_000)
    {
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory ?? Root,
            StandardOutputEncoding = Encoding.UTF8,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException(
                $"Cannot start '{program}' ({e.Message}). Run scripts/install-test-deps.sh (installs kubectl, node, redis-server).", e);
        }
        using (p)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(timeoutMs))
            {
                p.Kill(entireProcessTree: true);
                throw new TimeoutException($"'{program} {string.Join(' ', args)}' did not finish in {timeoutMs} ms.");
            }
            return new Result(p.ExitCode, stdout.Result, stderr.Result);
        }
    }

    /// <summary>Runs one of the node scripts in deploy/lint (installed by scripts/install-test-deps.sh).</summary>
    public static Result RunLinter(string script, params string[] args)
    {
        var lint = PathOf("deploy", "lint");
        if (!Directory.Exists(Path.Combine(lint, "node_modules")))
            throw new InvalidOperationException(
                "deploy/lint/node_modules is missing: run scripts/install-test-deps.sh (npm ci of the pinned validators).");
        return Run("node", [Path.Combine(lint, script), .. args], lint);
    }
}
