using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using ProxyOrleans.Abstractions;
using ProxyOrleans.Client.Benchmarks;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>
/// A gateway process SIGKILLed in the middle of a streamed, sampled completion: the client's stream is cut (no
/// [DONE]); the tenant's concurrency slot stays held only until the quota lease lapses; the lapsed lease gives the
/// request's token reservation back, so the client's retry through another gateway is admitted at once and is the
/// only charge; the retry's text is the fault-free text (same seed); the killed request leaves the cluster's list of
/// running requests; the killed generation's coordinator notices its lapsed consumer lease and frees every model
/// session, so the KV reserved on the silos is back at its baseline within 1.2 leases (plus the close calls).
/// Real processes: three silos and two gateways on loopback.
/// </summary>
public sealed class GatewayKillTests(ITestOutputHelper output)
{
    const string Combination = "proxy-tiny";
    const string AcmeKey = "sk-gateway-kill-acme", RefKey = "sk-gateway-kill-ref";
    const double LeaseSeconds = 3;
    // The coordinator checks its lease five times per lease; the close calls and a /metrics poll of three silos get 1.5 s.
    const double CoordinatorLeaseSeconds = 3, KvFreedWithinSeconds = CoordinatorLeaseSeconds * 1.2 + 1.5;
    const int MaxTokens = 200;

    static string Hash(string key) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    static string Body(bool stream) => JsonSerializer.Serialize(new
    {
        model = Combination, prompt = "Once upon a time", max_tokens = MaxTokens, temperature = 0.8, seed = 4242, stream,
    });

    static HttpRequestMessage Post(Uri gateway, string key, bool stream) => new(HttpMethod.Post, new Uri(gateway, "/v1/completions"))
    {
        Content = new StringContent(Body(stream), Encoding.UTF8, "application/json"),
        Headers = { Authorization = new("Bearer", key) },
    };

    /// <summary>Appends an SSE completion stream's text to <paramref name="text"/> (also when the stream is cut); whether it ended with [DONE].</summary>
    static async Task<(bool Done, string? Finish)> ReadStreamAsync(StreamReader reader, StringBuilder text, Func<int, Task>? afterChunk = null)
    {
        string? finish = null;
        int chunks = 0;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            var data = line["data: ".Length..];
            if (data == "[DONE]") return (true, finish);
            using var json = JsonDocument.Parse(data);
            foreach (var choice in json.RootElement.GetProperty("choices").EnumerateArray())
            {
                if (choice.TryGetProperty("text", out var t)) text.Append(t.GetString());
                if (choice.TryGetProperty("finish_reason", out var f) && f.ValueKind == JsonValueKind.String) finish = f.GetString();
            }
            chunks++;
            if (afterChunk is not null) await afterChunk(chunks);
        }
        return (false, finish);
    }

    /// <summary>The KV reserved once it is at most <paramref name="target"/>, or when <paramref name="wait"/> is up.</summary>
    static async Task<long> WaitForKvAsync(LoopbackCluster cluster, long target, TimeSpan wait)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var kv = await cluster.KvReservedBytesAsync();
            if (kv <= target || deadline.Elapsed > wait) return kv;
            await Task.Delay(100);
        }
    }

    /// <summary>The time on <paramref name="clock"/> when the KV reserved is back at <paramref name="baseline"/>; null if not within <paramref name="wait"/>.</summary>
    static async Task<TimeSpan?> TimeUntilKvAsync(LoopbackCluster cluster, long baseline, Stopwatch clock, TimeSpan wait)
    {
        while (clock.Elapsed < wait)
        {
            if (await cluster.KvReservedBytesAsync() <= baseline) return clock.Elapsed;
            await Task.Delay(100);
        }
        return null;
    }

    [Fact]
    public async Task A_gateway_killed_mid_stream_frees_the_slot_by_lease_expiry_and_the_retry_elsewhere_is_exact_and_charged_once()
    {
        var log = new StringWriter();
        var combination = new Dictionary<string, string>
        {
            [$"ProxyOrleans:Combinations:{Combination}:Base"] = TinyTrio.Base,
            [$"ProxyOrleans:Combinations:{Combination}:Alpha"] = "1",
            [$"ProxyOrleans:Combinations:{Combination}:Experts:0:Expert"] = TinyTrio.Expert,
            [$"ProxyOrleans:Combinations:{Combination}:Experts:0:AntiExpert"] = TinyTrio.Anti,
        };
        await using var cluster = await LoopbackCluster.StartAsync(
            [new("expert", TinyTrio.Model(TinyTrio.Expert)), new("base", TinyTrio.Model(TinyTrio.Base)), new("anti", TinyTrio.Model(TinyTrio.Anti))],
            TextWriter.Synchronized(log), combination);

        // acme: one generation at a time, and tokens/min for one request's reservation (200 + 4 prompt tokens) but not two.
        var config = new Dictionary<string, string>(combination)
        {
            ["ProxyOrleans:Gateway:QuotaLeaseSeconds"] = LeaseSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["ProxyOrleans:Gateway:CoordinatorLeaseSeconds"] = CoordinatorLeaseSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["ProxyOrleans:Tenants:0:Name"] = "acme",
            ["ProxyOrleans:Tenants:0:KeySha256"] = Hash(AcmeKey),
            ["ProxyOrleans:Tenants:0:Models:0"] = "*",
            ["ProxyOrleans:Tenants:0:MaxConcurrency"] = "1",
            ["ProxyOrleans:Tenants:0:TokensPerMinute"] = "300",
            ["ProxyOrleans:Tenants:1:Name"] = "reference",
            ["ProxyOrleans:Tenants:1:KeySha256"] = Hash(RefKey),
            ["ProxyOrleans:Tenants:1:Models:0"] = "*",
        };
        using var doomed = new GatewayProcess("gateway-a", cluster, config);
        using var survivor = new GatewayProcess("gateway-b", cluster, config);
        try
        {
            await Task.WhenAll(doomed.WaitReadyAsync(TimeSpan.FromSeconds(120)), survivor.WaitReadyAsync(TimeSpan.FromSeconds(120)));
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(120) };
            var quota = cluster.Grains.GetGrain<ITenantQuotaGrain>("acme");

            // The fault-free text, through the gateway that survives, by a tenant without limits.
            string reference;
            using (var r = await http.SendAsync(Post(survivor.BaseUri, RefKey, stream: false)))
            {
                var body = await r.Content.ReadAsStringAsync();
                Assert.True(r.StatusCode == HttpStatusCode.OK, body);
                using var json = JsonDocument.Parse(body);
                reference = json.RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!;
                Assert.Equal("length", json.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
            }
            // The KV baseline: nothing reserved once the reference request's sessions are closed.
            long kvBaseline = await WaitForKvAsync(cluster, 0, TimeSpan.FromSeconds(10));
            Assert.Equal(0, kvBaseline);

            // acme streams through gateway A, which is SIGKILLed after the third chunk.
            var killedAt = new Stopwatch();
            string killedId;
            (bool Done, string? Finish) cut = default;
            var cutText = new StringBuilder();
            Exception? cutError = null;
            Task<TimeSpan?>? kvFreed = null;
            long kvWhileStreaming = 0;
            using (var response = await http.SendAsync(Post(doomed.BaseUri, AcmeKey, stream: true), HttpCompletionOption.ResponseHeadersRead))
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                killedId = response.Headers.GetValues("x-request-id").Single();
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                try
                {
                    cut = await ReadStreamAsync(reader, cutText, async chunks =>
                    {
                        if (chunks != 3) return;
                        Assert.Equal(1, await quota.Active()); // the slot is taken while it streams
                        kvWhileStreaming = await cluster.KvReservedBytesAsync();
                        doomed.Kill();
                        killedAt.Start();
                        kvFreed = TimeUntilKvAsync(cluster, kvBaseline, killedAt, TimeSpan.FromSeconds(90));
                    });
                }
                catch (Exception e) when (e is IOException or HttpRequestException) { cutError = e; }
            }
            Assert.True(killedAt.IsRunning, "the stream ended before gateway A was killed: make the generation longer.");
            Assert.False(cut.Done, "the cut stream ended with [DONE]");
            Assert.Null(cut.Finish);
            output.WriteLine($"client saw the stream cut: {(cutError is null ? "end of stream without [DONE]" : cutError.GetType().Name + ": " + cutError.Message)}");
            Assert.True(kvWhileStreaming > kvBaseline, $"the streaming generation reserved no KV ({kvWhileStreaming} bytes): the check below would prove nothing.");

            // Until the lease lapses, the dead gateway's slot still counts: a retry at once is refused by concurrency.
            using (var early = await http.SendAsync(Post(survivor.BaseUri, AcmeKey, stream: true)))
            {
                var body = await early.Content.ReadAsStringAsync();
                Assert.True(early.StatusCode == HttpStatusCode.TooManyRequests, $"{early.StatusCode}: {body}");
                Assert.Contains("concurrency_limit_exceeded", body);
            }
            while (await quota.Active() > 0)
            {
                Assert.True(killedAt.Elapsed.TotalSeconds < LeaseSeconds + 2, $"acme's slot still held {killedAt.Elapsed.TotalSeconds:F1} s after the kill (lease {LeaseSeconds} s).");
                await Task.Delay(50);
            }
            var freedAfter = killedAt.Elapsed;
            output.WriteLine($"slot freed {freedAfter.TotalSeconds:F2} s after the SIGKILL (lease {LeaseSeconds} s, renewed every {LeaseSeconds / 3:F1} s)");
            Assert.True(freedAfter.TotalSeconds <= LeaseSeconds + 1, $"freed after {freedAfter.TotalSeconds:F2} s");

            // The killed generation's coordinator takes the lapsed consumer lease for a dead gateway: its model sessions
            // close and the silos' KV is back at the baseline (without the lease: about 60 s, when Orleans drops the stream).
            var kvFreedAfter = await kvFreed!;
            Assert.True(kvFreedAfter is not null, $"{await cluster.KvReservedBytesAsync()} KV bytes still reserved 90 s after the SIGKILL (baseline {kvBaseline}).");
            output.WriteLine($"KV back at its baseline {kvFreedAfter.Value.TotalSeconds:F2} s after the SIGKILL ({kvWhileStreaming} bytes were reserved; " +
                             $"coordinator lease {CoordinatorLeaseSeconds} s, bound {KvFreedWithinSeconds:F1} s)");
            Assert.True(kvFreedAfter.Value.TotalSeconds <= KvFreedWithinSeconds,
                $"KV back at its baseline only {kvFreedAfter.Value.TotalSeconds:F1} s after the SIGKILL; bound {KvFreedWithinSeconds:F1} s (coordinator lease {CoordinatorLeaseSeconds} s).");
            Assert.True(await cluster.SiloWithSessionAsync(TinyTrio.Base) < 0 && await cluster.SiloWithSessionAsync(TinyTrio.Expert) < 0,
                "the KV is freed but the killed generation's model sessions are still listed as open.");

            // The retry through gateway B: admitted at once (the lapsed lease gave its 204-token reservation back:
            // without that, 300 − 204 = 96 tokens would be left and it would be refused for about 20 s), and exact.
            using (var retry = await http.SendAsync(Post(survivor.BaseUri, AcmeKey, stream: true), HttpCompletionOption.ResponseHeadersRead))
            {
                if (retry.StatusCode != HttpStatusCode.OK) Assert.Fail($"retry refused: {retry.StatusCode} {await retry.Content.ReadAsStringAsync()}");
                using var reader = new StreamReader(await retry.Content.ReadAsStreamAsync());
                var text = new StringBuilder();
                var (done, finish) = await ReadStreamAsync(reader, text);
                Assert.True(done);
                Assert.Equal("length", finish);
                Assert.Equal(reference, text.ToString());
                Assert.True(cutText.Length > 0);
                Assert.StartsWith(cutText.ToString(), reference); // what the cut stream had shown was the start of the same text
            }
            // The retry's own lease is released once its response has ended.
            var releaseDeadline = DateTime.UtcNow.AddSeconds(5);
            while (await quota.Active() > 0 && DateTime.UtcNow < releaseDeadline) await Task.Delay(50);
            Assert.Equal(0, await quota.Active());

            // The killed request's registration lapsed too: no replica lists it as running.
            using (var list = await http.SendAsync(new HttpRequestMessage(HttpMethod.Get, new Uri(survivor.BaseUri, "/v1/requests"))
                   { Headers = { Authorization = new("Bearer", AcmeKey) } }))
                Assert.DoesNotContain(killedId, await list.Content.ReadAsStringAsync());

            // And the retry's sessions are freed once it ended.
            Assert.Equal(kvBaseline, await WaitForKvAsync(cluster, kvBaseline, TimeSpan.FromSeconds(10)));
        }
        catch
        {
            output.WriteLine(doomed.Tail());
            output.WriteLine(survivor.Tail());
            output.WriteLine(log.ToString()[^Math.Min(log.ToString().Length, 6000)..]);
            throw;
        }
    }
}
