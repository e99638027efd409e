using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using ProxyOrleans.Client.Commands;

namespace ProxyOrleans.Deploy.Tests;

/// <summary>A real redis-server on a free loopback port, started and stopped by the test that owns it.</summary>
public sealed class RedisServer : IDisposable
{
    readonly Process process;
    public int Port { get; }
    public string ConnectionString => $"127.0.0.1:{Port}";

    public RedisServer()
    {
        Port = LoopbackPorts.Next();
        var psi = new ProcessStartInfo("redis-server")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetTempPath(),
        };
        foreach (var a in new[] { "--port", Port.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no" })
            psi.ArgumentList.Add(a);
        try { process = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("redis-server is not installed: run scripts/install-test-deps.sh.", e);
        }
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!Ping())
        {
            if (process.HasExited) throw new InvalidOperationException($"redis-server exited with {process.ExitCode} on port {Port}.");
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"redis-server did not answer PING on port {Port} in 15 s.");
            Thread.Sleep(50);
        }
    }

    /// <summary>Sends one inline command and returns the first reply line.</summary>
    public string Command(string command)
    {
        using var c = new TcpClient();
        c.Connect(IPAddress.Loopback, Port);
        var s = c.GetStream();
        s.Write(Encoding.ASCII.GetBytes(command + "\r\n"));
        var buf = new byte[4096];
        int n = s.Read(buf);
        return Encoding.ASCII.GetString(buf, 0, n);
    }

    bool Ping()
    {
        try { return Command("PING").StartsWith("+PONG"); }
        catch (SocketException) { return false; }
    }

    public void Dispose()
    {
        try { if (!process.HasExited) { process.Kill(); process.WaitForExit(5000); } }
        finally { process.Dispose(); }
    }
}
