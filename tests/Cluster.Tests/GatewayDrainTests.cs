using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using ProxyOrleans.Abstractions;
using ProxyOrleans.Client.Benchmarks;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>
/// Gateways stopped with SIGTERM, as a rolling update of the gateway Deployment does. Real processes: three silos and
/// gateway processes on loopback, and in front of them a load balancer that reads each gateway's /readyz (as a
/// Kubernetes Service or any health-checking balancer does) and spreads streamed completions over the ready ones.
/// </summary>
public sealed class GatewayDrainTests(ITestOutputHelper output)
{
    const string Combination = "proxy-tiny";
    const string Key = "sk-gateway-drain";
    // Longer than the balancer below needs to take a gateway out (two failed probes 100 ms apart), shorter than a stream.
    const double DrainDelaySeconds = 0.5;
    static readonly string[] Prompts = ["Once upon a time", "The best way to learn is", "In 1492, Columbus"];

    static string Hash(string key) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    static Dictionary<string, string> CombinationConfig() => new()
    {
        [$"ProxyOrleans:Combinations:{Combination}:Base"] = TinyTrio.Base,
        [$"ProxyOrleans:Combinations:{Combination}:Alpha"] = "1",
        [$"ProxyOrleans:Combinations:{Combination}:Experts:0:Expert"] = TinyTrio.Expert,
        [$"ProxyOrleans:Combinations:{Combination}:Experts:0:AntiExpert"] = TinyTrio.Anti,
    };

    /// <summary>The gateways' configuration: one tenant whose concurrency is counted (so its slots can leak), and the drain settings.</summary>
    static Dictionary<string, string> GatewayConfig(double delaySeconds, double graceSeconds) => new(CombinationConfig())
    {
        ["ProxyOrleans:Gateway:DrainDelaySeconds"] = delaySeconds.ToString(CultureInfo.InvariantCulture),
        ["ProxyOrleans:Gateway:DrainGraceSeconds"] = graceSeconds.ToString(CultureInfo.InvariantCulture),
        ["ProxyOrleans:Tenants:0:Name"] = "acme",
        ["ProxyOrleans:Tenants:0:KeySha256"] = Hash(Key),
        ["ProxyOrleans:Tenants:0:Models:0"] = "*",
        ["ProxyOrleans:Tenants:0:MaxConcurrency"] = "64",
    };

    static Task<LoopbackCluster> StartClusterAsync(TextWriter log, IReadOnlyDictionary<string, string>? extra = null) =>
        LoopbackCluster.StartAsync(
            [new("expert", TinyTrio.Model(TinyTrio.Expert)), new("base", TinyTrio.Model(TinyTrio.Base)), new("anti", TinyTrio.Model(TinyTrio.Anti))],
            TextWriter.Synchronized(log), CombinationConfig().Concat(extra ?? new Dictionary<string, string>()).ToDictionary());

    /// <summary>Kind k: each prompt once greedy, once seeded sampling at temperature 0.8.</summary>
    static string Body(int kind, int maxTokens, bool stream = true) => JsonSerializer.Serialize(kind % 2 == 0
        ? (object)new { model = Combination, prompt = Prompts[kind / 2 % Prompts.Length], max_tokens = maxTokens, temperature = 0, stream }
        : new { model = Combination, prompt = Prompts[kind / 2 % Prompts.Length], max_tokens = maxTokens, temperature = 0.8, top_p = 0.95, seed = 700 + kind, stream });

    static HttpRequestMessage Post(Uri gateway, string body) => new(HttpMethod.Post, new Uri(gateway, "/v1/completions"))
    {
        Content = new StringContent(body, Encoding.UTF8, "application/json"),
        Headers = { Authorization = new("Bearer", Key) },
    };

    sealed record StreamResult(string Text, bool Done, string? Finish, string? ErrorCode, string? ErrorMessage);

    /// <summary>Reads an SSE completion stream: its text, whether it ended with [DONE], and a last error event if any.</summary>
    static async Task<StreamResult> ReadStreamAsync(HttpResponseMessage response, Action? firstChunk = null)
    {
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var text = new StringBuilder();
        string? finish = null, code = null, message = null;
        bool first = true;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            var data = line["data: ".Length..];
            if (data == "[DONE]") return new(text.ToString(), true, finish, code, message);
            using var json = JsonDocument.Parse(data);
            if (json.RootElement.TryGetProperty("error", out var error))
            {
                code = error.GetProperty("code").GetString();
                message = error.GetProperty("message").GetString();
                continue;
            }
            foreach (var choice in json.RootElement.GetProperty("choices").EnumerateArray())
            {
                if (choice.TryGetProperty("text", out var t)) text.Append(t.GetString());
                if (choice.TryGetProperty("finish_reason", out var f) && f.ValueKind == JsonValueKind.String) finish = f.GetString();
            }
            if (first) { first = false; firstChunk?.Invoke(); }
        }
        return new(text.ToString(), false, finish, code, message);
    }

    /// <summary>
    /// The load balancer, a readiness probe scaled down from the manifest's (period 5 s, failure threshold 2): it
    /// probes every backend's /readyz every 100 ms, takes a backend out after two failed probes in a row (a refused
    /// connection is one) and back in after one success, and hands out the ready ones in turn. It never retries a
    /// request: what reaches a gateway must be answered by it.
    /// </summary>
    sealed class ReadinessBalancer : IAsyncDisposable
    {
        readonly Uri[] backends;
        readonly bool[] ready;
        readonly CancellationTokenSource stop = new();
        readonly Task polling;
        int next;

        public ReadinessBalancer(IEnumerable<Uri> backends)
        {
            this.backends = [.. backends];
            ready = new bool[this.backends.Length];
            polling = Task.Run(PollAsync);
        }

        async Task PollAsync()
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(1) };
            var failures = new int[backends.Length];
            while (!stop.IsCancellationRequested)
            {
                for (int i = 0; i < backends.Length; i++)
                {
                    bool ok;
                    try { using var r = await http.GetAsync(new Uri(backends[i], "/readyz"), stop.Token); ok = r.IsSuccessStatusCode; }
                    catch (Exception) { ok = false; }
                    failures[i] = ok ? 0 : failures[i] + 1;
                    if (ok) Volatile.Write(ref ready[i], true);
                    else if (failures[i] >= 2) Volatile.Write(ref ready[i], false);
                }
                try { await Task.Delay(100, stop.Token); } catch (OperationCanceledException) { }
            }
        }

        public async Task<int> PickAsync(CancellationToken ct)
        {
            while (true)
            {
                for (int k = 0; k < backends.Length; k++)
                {
                    int i = (int)((uint)Interlocked.Increment(ref next) % backends.Length);
                    if (Volatile.Read(ref ready[i])) return i;
                }
                await Task.Delay(20, ct);
            }
        }

        public Uri this[int i] => backends[i];

        public async ValueTask DisposeAsync()
        {
            stop.Cancel();
            await polling;
        }
    }

    sealed record Outcome(int Kind, int Gateway, string? Text, string? Error, long StartedTicks, long EndedTicks);

    [Fact]
    public async Task StoppingEachOfTwoGatewaysMidStreamUnderLoadFailsNoRequestAndChangesNoText()
    {
        const int Tokens = 60, Workers = 6, Kinds = 6;
        var total = Stopwatch.StartNew();
        var log = new StringWriter();
        await using var cluster = await StartClusterAsync(log);
        var config = GatewayConfig(DrainDelaySeconds, graceSeconds: 30);
        var gateways = new[] { new GatewayProcess("gateway-a", cluster, config), new GatewayProcess("gateway-b", cluster, config) };
        var everyProcess = new List<GatewayProcess>(gateways);
        try
        {
            await Task.WhenAll(gateways.Select(g => g.WaitReadyAsync(TimeSpan.FromSeconds(120))));
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
            var quota = cluster.Grains.GetGrain<ITenantQuotaGrain>("acme");

            // The fault-free twins, every kind once through each gateway.
            var twins = new string[Kinds];
            for (int k = 0; k < Kinds; k++)
                for (int g = 0; g < 2; g++)
                {
                    using var r = await http.SendAsync(Post(gateways[g].BaseUri, Body(k, Tokens)), HttpCompletionOption.ResponseHeadersRead);
                    Assert.Equal(HttpStatusCode.OK, r.StatusCode);
                    var s = await ReadStreamAsync(r);
                    Assert.True(s.Done && s.Finish == "length" && s.ErrorCode is null, $"fault-free kind {k} via {gateways[g].Name}: {s}");
                    if (g == 0) twins[k] = s.Text;
                    else Assert.Equal(twins[k], s.Text);
                }
            Assert.NotEqual(twins[0], twins[1]); // the seeded kind really samples
            long kvBaseline = await cluster.KvReservedBytesAsync();

            await using var balancer = new ReadinessBalancer(gateways.Select(g => g.BaseUri));
            var clock = Stopwatch.StartNew();
            var streaming = new int[2]; // streams per gateway that have shown their first chunk and not ended yet
            var lastFirstChunk = new long[2]; // when a stream on that gateway last showed its first chunk
            var outcomes = new ConcurrentBag<Outcome>();
            using var done = new CancellationTokenSource();
            var load = Enumerable.Range(0, Workers).Select(w => Task.Run(async () =>
            {
                for (int n = 0; !done.IsCancellationRequested; n++)
                {
                    int kind = (w + n) % Kinds;
                    int g;
                    try { g = await balancer.PickAsync(done.Token); } catch (OperationCanceledException) { return; }
                    long started = clock.ElapsedTicks;
                    bool counted = false;
                    string? text = null, error = null;
                    try
                    {
                        using var r = await http.SendAsync(Post(balancer[g], Body(kind, Tokens)), HttpCompletionOption.ResponseHeadersRead);
                        if (r.StatusCode != HttpStatusCode.OK) error = $"{(int)r.StatusCode}: {await r.Content.ReadAsStringAsync()}";
                        else
                        {
                            var s = await ReadStreamAsync(r, () => { counted = true; Interlocked.Increment(ref streaming[g]); Volatile.Write(ref lastFirstChunk[g], clock.ElapsedTicks); });
                            if (s.ErrorCode is not null) error = $"error event {s.ErrorCode}: {s.ErrorMessage}";
                            else if (!s.Done || s.Finish != "length") error = $"stream ended without [DONE] (finish {s.Finish ?? "none"})";
                            else text = s.Text;
                        }
                    }
                    catch (Exception e) { error = $"{e.GetType().Name}: {e.Message}"; }
                    finally { if (counted) Interlocked.Decrement(ref streaming[g]); }
                    outcomes.Add(new Outcome(kind, g, text, error, started, clock.ElapsedTicks));
                }
            })).ToArray();

            var terminatedAt = new long[2];
            for (int g = 0; g < 2; g++)
            {
                await Task.Delay(1500); // both gateways serve before the next one goes
                var wait = Stopwatch.StartNew();
                // Two streams running, one of them just begun (it outlives the delay, so Kestrel must keep it after closing its listeners).
                while (Volatile.Read(ref streaming[g]) < 2 || clock.ElapsedTicks - Volatile.Read(ref lastFirstChunk[g]) > Stopwatch.Frequency / 10)
                {
                    Assert.True(wait.Elapsed < TimeSpan.FromSeconds(30), $"{gateways[g].Name} never had two streams running at once");
                    await Task.Delay(5);
                }
                var step = Stopwatch.StartNew();
                terminatedAt[g] = clock.ElapsedTicks;
                gateways[g].Terminate();
                // Not ready at once, while it still accepts (the delay), so that the balancer stops sending first.
                TimeSpan? notReady = null;
                using (var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(1) })
                    while (step.Elapsed < TimeSpan.FromSeconds(DrainDelaySeconds))
                    {
                        try
                        {
                            using var r = await probe.GetAsync(new Uri(gateways[g].BaseUri, "/readyz"));
                            if (r.StatusCode == HttpStatusCode.ServiceUnavailable) { notReady = step.Elapsed; break; }
                        }
                        catch (HttpRequestException) { break; } // no longer listening
                        await Task.Delay(20);
                    }
                Assert.True(notReady is not null, $"{gateways[g].Name} did not answer /readyz with 503 after SIGTERM while it still listened");
                var code = await gateways[g].WaitForExitAsync(TimeSpan.FromSeconds(60));
                Assert.True(code == 0, $"{gateways[g].Name} did not drain and exit cleanly: exit {code?.ToString() ?? "none within 60 s"}\n{gateways[g].Tail()}");
                var exited = step.Elapsed;
                var replacement = new GatewayProcess(gateways[g].Name, cluster, config, gateways[g].Port);
                everyProcess.Add(replacement);
                gateways[g] = replacement;
                await replacement.WaitReadyAsync(TimeSpan.FromSeconds(120));
                output.WriteLine($"{replacement.Name}: /readyz 503 {notReady.Value.TotalMilliseconds:F0} ms after SIGTERM, drained and exited after " +
                                 $"{exited.TotalSeconds:F1} s, replacement ready after {step.Elapsed.TotalSeconds:F1} s");
            }
            await Task.Delay(1500); // the last replacement serves too
            done.Cancel();
            await Task.WhenAll(load);

            var all = outcomes.ToList();
            var failed = all.Where(o => o.Error is not null).ToList();
            var differing = all.Where(o => o.Error is null && o.Text != twins[o.Kind]).ToList();
            var acrossSigterm = Enumerable.Range(0, 2)
                .Select(g => all.Count(o => o.Gateway == g && o.Error is null && o.StartedTicks < terminatedAt[g] && o.EndedTicks > terminatedAt[g])).ToArray();
            // Streams that Kestrel still served after it had closed its listeners (the delay's end).
            var delayTicks = (long)(DrainDelaySeconds * Stopwatch.Frequency);
            var afterListenersClosed = Enumerable.Range(0, 2)
                .Select(g => all.Count(o => o.Gateway == g && o.Error is null && o.StartedTicks < terminatedAt[g] && o.EndedTicks > terminatedAt[g] + delayTicks)).ToArray();
            output.WriteLine($"requests={all.Count} failed={failed.Count} different={differing.Count} " +
                             $"finished_across_sigterm={string.Join("/", acrossSigterm)} finished_after_listeners_closed={string.Join("/", afterListenersClosed)} " +
                             $"seconds={total.Elapsed.TotalSeconds:F1}");
            foreach (var f in failed.Take(5)) output.WriteLine($"failed (kind {f.Kind}, gateway {f.Gateway}): {f.Error}");
            Assert.Empty(failed);
            Assert.Empty(differing);
            Assert.All(acrossSigterm, n => Assert.True(n >= 2, $"streams running across a SIGTERM: {string.Join("/", acrossSigterm)} (expected ≥ 2 per gateway)"));
            Assert.True(afterListenersClosed.Sum() >= 1, "no stream outlived its gateway's listeners: the drain of running streams was not exercised");

            // Nothing left reserved: the tenant's slots (leases of 30 s would still hold a leaked one) and the KV.
            var deadline = Stopwatch.StartNew();
            while (await quota.Active() > 0 && deadline.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(50);
            Assert.Equal(0, await quota.Active());
            long kv;
            while ((kv = await cluster.KvReservedBytesAsync()) > kvBaseline && deadline.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(100);
            Assert.Equal(kvBaseline, kv);
        }
        catch
        {
            foreach (var g in everyProcess) output.WriteLine(g.Tail());
            output.WriteLine(log.ToString()[^Math.Min(log.ToString().Length, 6000)..]);
            throw;
        }
        finally
        {
            foreach (var g in everyProcess) g.Dispose();
        }
    }

    [Fact]
    public async Task RequestsOutlivingTheDrainGracePeriodEndWithARetryErrorAndFreeTheirSlotsAndKv()
    {
        // 40 ms per model step (simulated accelerator latency): a 200-token stream takes about 8 s, far past a 1 s grace.
        const double GraceSeconds = 1;
        var log = new StringWriter();
        await using var cluster = await StartClusterAsync(log, new Dictionary<string, string> { ["ProxyOrleans:LatencyModel"] = "fixed=40" });
        using var gateway = new GatewayProcess("gateway-a", cluster, GatewayConfig(delaySeconds: 0, GraceSeconds));
        try
        {
            await gateway.WaitReadyAsync(TimeSpan.FromSeconds(120));
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
            var quota = cluster.Grains.GetGrain<ITenantQuotaGrain>("acme");
            long kvBaseline = await cluster.KvReservedBytesAsync();

            using var streamed = await http.SendAsync(Post(gateway.BaseUri, Body(1, 200)), HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
            var firstChunk = new TaskCompletionSource();
            var reading = ReadStreamAsync(streamed, () => firstChunk.TrySetResult());
            await firstChunk.Task.WaitAsync(TimeSpan.FromSeconds(30));
            var whole = http.SendAsync(Post(gateway.BaseUri, Body(0, 200, stream: false)));
            var admitted = Stopwatch.StartNew();
            while (await quota.Active() < 2) // both admitted
            {
                Assert.True(admitted.Elapsed < TimeSpan.FromSeconds(30), "the non-streamed request was not admitted within 30 s");
                await Task.Delay(20);
            }
            Assert.True(await cluster.KvReservedBytesAsync() > kvBaseline, "the running requests reserved no KV: the check below would prove nothing");

            var sigterm = Stopwatch.StartNew();
            gateway.Terminate();
            var stream = await reading.WaitAsync(TimeSpan.FromSeconds(30));
            var endedAfter = sigterm.Elapsed;
            output.WriteLine($"stream ended {endedAfter.TotalSeconds:F2} s after SIGTERM (grace {GraceSeconds} s): {stream.ErrorCode}: {stream.ErrorMessage}");
            Assert.Equal("gateway_draining", stream.ErrorCode);
            Assert.Contains("retry", stream.ErrorMessage);
            Assert.False(stream.Done);
            Assert.True(stream.Text.Length > 0);
            Assert.True(endedAfter < TimeSpan.FromSeconds(GraceSeconds + 2), $"the stream ended {endedAfter.TotalSeconds:F1} s after SIGTERM; grace {GraceSeconds} s");

            using var wholeResponse = await whole.WaitAsync(TimeSpan.FromSeconds(30));
            var wholeBody = await wholeResponse.Content.ReadAsStringAsync();
            Assert.True(wholeResponse.StatusCode == HttpStatusCode.ServiceUnavailable, $"{wholeResponse.StatusCode}: {wholeBody}");
            Assert.Contains("gateway_draining", wholeBody);
            Assert.True(wholeResponse.Headers.RetryAfter is not null, "no Retry-After on the 503");

            var code = await gateway.WaitForExitAsync(TimeSpan.FromSeconds(30));
            Assert.True(code == 0, $"exit {code?.ToString() ?? "none within 30 s"}");
            output.WriteLine($"gateway exited {sigterm.Elapsed.TotalSeconds:F2} s after SIGTERM");
            // Released at once, not by the 30 s lease; the generations were cancelled on the cluster and their KV freed.
            Assert.Equal(0, await quota.Active());
            var deadline = Stopwatch.StartNew();
            long kv;
            while ((kv = await cluster.KvReservedBytesAsync()) > kvBaseline && deadline.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(100);
            output.WriteLine($"KV back at its baseline {deadline.Elapsed.TotalSeconds:F2} s after the exit");
            Assert.Equal(kvBaseline, kv);
        }
        catch
        {
            output.WriteLine(gateway.Tail());
            output.WriteLine(log.ToString()[^Math.Min(log.ToString().Length, 6000)..]);
            throw;
        }
    }
}
