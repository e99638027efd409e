using System.Net;
using System.Text;
using System.Text.Json;
using ProxyOrleans.Client.Benchmarks;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>The README's first command as a newcomer runs it, then an OpenAI request without a key from this machine.</summary>
public sealed class MainJobTests(ITestOutputHelper output)
{
    [Fact]
    public async Task With_no_arguments_it_serves_the_OpenAI_API_without_a_key_on_loopback_and_stops_on_SIGTERM()
    {
        using var job = new MainJobProcess();
        try
        {
            await job.WaitUntilServingAsync(TimeSpan.FromSeconds(120));
            using var http = new HttpClient { BaseAddress = job.BaseUri, Timeout = TimeSpan.FromSeconds(60) };
            var body = """{"model":"proxy-large","messages":[{"role":"user","content":"Where does Farid Keller live?"}],"max_tokens":8,"temperature":0}""";
            var answer = await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
            var text = await answer.Content.ReadAsStringAsync();
            output.WriteLine(text);
            Assert.True(answer.StatusCode == HttpStatusCode.OK, $"{(int)answer.StatusCode}: {text}\n{job.Log}");
            using (var doc = JsonDocument.Parse(text))
                Assert.False(string.IsNullOrEmpty(doc.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()));

            var page = await http.GetAsync("/playground");
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Contains("ProxyOrleans playground", await page.Content.ReadAsStringAsync());

            var banner = job.Log;
            Assert.Contains($"Playground: {job.BaseUri}playground", banner);
            Assert.Contains("requests without a key are accepted from this machine (loopback) only", banner);
            Assert.Contains("ProxyOrleans__TenantsFile", banner);

            Assert.True(await job.TerminateAsync(TimeSpan.FromSeconds(30)), "still running 30 s after SIGTERM\n" + job.Log);
            Assert.True(job.ExitCode == 0, $"exit code {job.ExitCode}\n{job.Log}");
        }
        finally { output.WriteLine(job.Log); }
    }
}

/// <summary>With OTEL_EXPORTER_OTLP_ENDPOINT set, the main job exports its traces over OTLP (HTTP/protobuf here).</summary>
public sealed class MainJobTraceExportTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_request_to_the_main_job_is_exported_over_OTLP_with_gateway_and_model_spans()
    {
        int port = Client.Benchmarks.LoopbackPorts.Next();
        using var collector = new HttpListener();
        collector.Prefixes.Add($"http://127.0.0.1:{port}/");
        collector.Start();
        var received = new System.Collections.Concurrent.ConcurrentQueue<byte[]>();
        var serving = Task.Run(async () =>
        {
            while (collector.IsListening)
            {
                HttpListenerContext ctx;
                try { ctx = await collector.GetContextAsync(); } catch { return; }
                using var body = new MemoryStream();
                await ctx.Request.InputStream.CopyToAsync(body);
                if (ctx.Request.Url!.AbsolutePath == "/v1/traces") received.Enqueue(body.ToArray());
                ctx.Response.StatusCode = 200;
                ctx.Response.ContentType = "application/x-protobuf";
                ctx.Response.Close();
            }
        });
        using var job = new MainJobProcess(new Dictionary<string, string>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = $"http://127.0.0.1:{port}",
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "500",
        });
        try
        {
            await job.WaitUntilServingAsync(TimeSpan.FromSeconds(120));
            using var http = new HttpClient { BaseAddress = job.BaseUri, Timeout = TimeSpan.FromSeconds(60) };
            var body = """{"model":"proxy-large","messages":[{"role":"user","content":"Where does Farid Keller live?"}],"max_tokens":4,"temperature":0}""";
            var answer = await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);

            // The spans' names and attributes travel as UTF-8 strings inside the protobuf batches.
            string Exported() => string.Join("\n", received.Select(b => Encoding.UTF8.GetString(b)));
            var deadline = System.Diagnostics.Stopwatch.StartNew();
            string[] expected = ["gateway chat.completions", "model prefill", "model step", "base-large", "tuned-small", "base-small"];
            while (expected.Any(e => !Exported().Contains(e)) && deadline.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(200);
            output.WriteLine($"{received.Count} OTLP batches, {received.Sum(b => b.Length)} bytes");
            foreach (var e in expected) Assert.True(Exported().Contains(e), $"no '{e}' in the exported traces ({received.Count} batches)\n{job.Log}");
        }
        finally
        {
            collector.Stop();
            output.WriteLine(job.Log);
        }
    }
}

/// <summary>A silo serving configured models (a cluster's silo) logs JSON lines, as the gateway does.</summary>
public sealed class SiloLogTests
{
    [Fact]
    public async Task A_silo_with_configured_models_writes_structured_JSON_logs()
    {
        using var process = new HostProcess("silo", RepositoryLayout.BuiltDll("Silo"), new Dictionary<string, string>(), Environment.CurrentDirectory,
            ["--models", $"{TinyTrio.Base}={TinyTrio.Dir(TinyTrio.Base)}",
             "--silo-port", Client.Benchmarks.LoopbackPorts.Next().ToString(), "--gateway-port", Client.Benchmarks.LoopbackPorts.Next().ToString(),
             "--http-port", "0", "--no-demo", "--threads", "1"]);
        var loaded = await process.WaitForOutputLineAsync(line => line.Contains("Loaded model"), TimeSpan.FromSeconds(120));
        Assert.True(loaded is not null, "no 'Loaded model' log line:\n" + string.Join('\n', process.StandardOutputLines));
        using var doc = JsonDocument.Parse(loaded!);
        Assert.Equal("Information", doc.RootElement.GetProperty("LogLevel").GetString());
        Assert.Contains("HostedModels", doc.RootElement.GetProperty("Category").GetString());
        Assert.Contains(TinyTrio.Base, doc.RootElement.GetProperty("Message").GetString());
        Assert.True(doc.RootElement.TryGetProperty("Timestamp", out _));
    }
}
