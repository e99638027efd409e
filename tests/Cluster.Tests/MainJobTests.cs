using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using ProxyOrleans.Client.Commands;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>
/// The README's first command as a newcomer runs it: the silo host with no arguments (bundled demo models), then
/// an OpenAI request without a key from this machine. Only the ports move (through the environment, so the
/// command line stays empty) so that the test cannot collide with a main job someone is running.
/// </summary>
public sealed class MainJobTests(ITestOutputHelper output)
{
    [Fact]
    public async Task With_no_arguments_it_serves_the_OpenAI_API_without_a_key_on_loopback_and_stops_on_SIGTERM()
    {
        int apiPort = LoopbackPorts.Next();
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = LoopbackCluster.FindRepoRoot() };
        psi.ArgumentList.Add(LoopbackCluster.FindSiloDll());
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("ProxyOrleans", StringComparison.OrdinalIgnoreCase) || k.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase)).ToList())
            psi.Environment.Remove(key);
        psi.Environment["ProxyOrleans__SiloPort"] = LoopbackPorts.Next().ToString();
        psi.Environment["ProxyOrleans__GatewayPort"] = LoopbackPorts.Next().ToString();
        psi.Environment["ProxyOrleans__HttpPort"] = LoopbackPorts.Next().ToString();
        psi.Environment["ProxyOrleans__ApiUrl"] = $"http://127.0.0.1:{apiPort}";
        psi.Environment["ProxyOrleans__Threads"] = "1";
        var log = new StringBuilder();
        using var process = Process.Start(psi)!;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        string Log() { lock (log) return log.ToString(); }
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{apiPort}"), Timeout = TimeSpan.FromSeconds(60) };
            var body = """{"model":"proxy-large","messages":[{"role":"user","content":"Where does Farid Keller live?"}],"max_tokens":8,"temperature":0}""";
            HttpResponseMessage? answer = null;
            var deadline = Stopwatch.StartNew();
            while (answer is null)
            {
                Assert.False(process.HasExited, "the main job exited:\n" + Log());
                Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(120), "the API did not answer within 120 s:\n" + Log());
                try { answer = await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json")); }
                catch (HttpRequestException) { await Task.Delay(500); }
            }
            var text = await answer.Content.ReadAsStringAsync();
            output.WriteLine($"first answer after {deadline.Elapsed.TotalSeconds:F1} s: {text}");
            Assert.True(answer.StatusCode == HttpStatusCode.OK, $"{(int)answer.StatusCode}: {text}\n{Log()}");
            using (var doc = JsonDocument.Parse(text))
                Assert.False(string.IsNullOrEmpty(doc.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()));

            var banner = Log();
            Assert.Contains($"Playground: http://127.0.0.1:{apiPort}/playground", banner);
            Assert.Contains("requests without a key are accepted from this machine (loopback) only", banner);
            Assert.Contains("ProxyOrleans__TenantsFile", banner);

            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString()])) await kill.WaitForExitAsync();
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await process.WaitForExitAsync(stop.Token);
            Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}\n{Log()}");
        }
        finally
        {
            if (!process.HasExited) { process.Kill(entireProcessTree: true); process.WaitForExit(5000); }
            output.WriteLine(Log());
        }
    }
}
