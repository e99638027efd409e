using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace ProxyOrleans.Client.Benchmarks;

/// <summary>
/// A redis-server of our own on a free loopback port (no persistence), for loopback clusters with Redis membership
/// (the chaos command and the deployment tests). With a password it runs with --requirepass, as the Kubernetes
/// manifests run Redis.
/// </summary>
public sealed class RedisProcess : IDisposable
{
    private readonly Process _process;
    public int Port { get; }
    /// <summary>The password clients must send (AUTH), or null when the server takes anyone.</summary>
    public string? Password { get; }
    /// <summary>host:port only: the password, if any, is given separately (ProxyOrleans:RedisPassword).</summary>
    public string ConnectionString => $"127.0.0.1:{Port}";

    private RedisProcess(Process process, int port, string? password) { _process = process; Port = port; Password = password; }

    public static RedisProcess Start(string? password = null)
    {
        int port = LoopbackPorts.Next();
        var psi = new ProcessStartInfo("redis-server") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Path.GetTempPath() };
        foreach (var a in new[] { "--port", port.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no" }) psi.ArgumentList.Add(a);
        if (password is not null) { psi.ArgumentList.Add("--requirepass"); psi.ArgumentList.Add(password); }
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("redis-server is not installed (apt-get install redis-server, or scripts/install-test-deps.sh); or pass --redis host:port.", e);
        }
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        var redis = new RedisProcess(p, port, password);
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!redis.Ping())
        {
            if (p.HasExited) { redis.Dispose(); throw new InvalidOperationException($"redis-server exited with {p.ExitCode} on port {port}."); }
            if (DateTime.UtcNow > deadline) { redis.Dispose(); throw new TimeoutException($"redis-server did not answer PING on port {port} in 15 s."); }
            Thread.Sleep(50);
        }
        return redis;
    }

    /// <summary>Sends one inline command (after AUTH when the server has a password, unless told not to) and returns the first reply (e.g. "KEYS *").</summary>
    public string Command(string command, bool authenticate = true)
    {
        using var c = new TcpClient();
        c.Connect(IPAddress.Loopback, Port);
        var s = c.GetStream();
        var buf = new byte[4096];
        string Send(string line)
        {
            s.Write(Encoding.ASCII.GetBytes(line + "\r\n"));
            return Encoding.ASCII.GetString(buf, 0, s.Read(buf));
        }
        if (authenticate && Password is not null && Send("AUTH " + Password) is var auth && !auth.StartsWith("+OK", StringComparison.Ordinal))
            throw new InvalidOperationException($"redis-server on port {Port} refused AUTH: {auth.Trim()}");
        return Send(command);
    }

    private bool Ping()
    {
        try { return Command("PING").StartsWith("+PONG", StringComparison.Ordinal); }
        catch (SocketException) { return false; }
    }

    public void Dispose()
    {
        try { if (!_process.HasExited) { _process.Kill(); _process.WaitForExit(5000); } }
        finally { _process.Dispose(); }
    }
}
