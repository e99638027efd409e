using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using ProxyOrleans.Abstractions;
using ProxyOrleans.Client.Benchmarks;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>
/// A rolling update of every role under steady load, as Kubernetes runs one: real silo processes on loopback with
/// Redis membership (two base replicas, two expert/anti-expert pair replicas), concurrent streamed requests mixing
/// greedy and seeded sampling without pause, and one silo at a time stopped with SIGTERM (it drains), awaited until
/// it exits, replaced by a fresh process of the same role that must report ready before the next one goes.
/// No request may fail or hang, every stream's text must equal its fault-free twin, and no KV stays reserved.
/// </summary>
public sealed class RollingRestartTests(ITestOutputHelper output)
{
    const int Tokens = 16, Workers = 6;

    static readonly string[] Prompts = ["Once upon a time", "The best way to learn is", "In 1492, Columbus"];

    /// <summary>
    /// Request kind <paramref name="k"/>: each prompt once greedy, once with seeded sampling at temperature 0.8. With
    /// the consumer lease the HTTP gateway gives every request (CoordinatorLeaseSeconds, 5 s): an attempt whose path
    /// a stopping gateway dropped, and whose cancel it dropped too, frees its sessions when the lease lapses instead of
    /// when Orleans drops its unread enumeration a minute later (35,840 bytes were still reserved 15 s after the load
    /// in one run without it).
    /// </summary>
    static GenerationRequest Request(int k) => TinyTrio.Request(Prompts[k / 2 % Prompts.Length], Tokens) with
    {
        ConsumerLeaseSeconds = 5,
        Sampling = k % 2 == 0
            ? new SamplingSpec { Temperature = 0, MaxNewTokens = Tokens, StopAtEos = false }
            : new SamplingSpec { Temperature = 0.8f, TopP = 0.95f, Seed = (ulong)(500 + k), MaxNewTokens = Tokens, StopAtEos = false },
    };

    static int Kinds => Prompts.Length * 2;

    sealed record Outcome(int Kind, string? Text, FinishKind Finish, string? Error, int Failovers)
    {
        public TimeSpan Took { get; init; }
    }

    static async Task<Outcome> RunOneAsync(LoopbackCluster c, int kind, string id)
    {
        var sw = Stopwatch.StartNew();
        return await RunStreamAsync(c, kind, id) with { Took = sw.Elapsed };
    }

    static async Task<Outcome> RunStreamAsync(LoopbackCluster c, int kind, string id)
    {
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var text = new System.Text.StringBuilder();
        try
        {
            await foreach (var ev in GenerationClient.StreamAsync(c.Grains, Request(kind), id, limit.Token))
            {
                text.Append(ev.Text);
                if (ev.Finish != FinishKind.None)
                    return ev.Finish == FinishKind.Error
                        ? new Outcome(kind, null, ev.Finish, "the coordinator reported an error", 0)
                        : new Outcome(kind, text.ToString(), ev.Finish, null, ev.Stats?.Failovers ?? 0);
            }
            return new Outcome(kind, null, FinishKind.None, "the stream ended without a finish", 0);
        }
        catch (Exception e) { return new Outcome(kind, null, FinishKind.None, $"{e.GetType().Name}: {e.Message.Split('\n')[0]}", 0); }
    }

    /// <summary>KV bytes reserved on the running silos, by their /metrics.</summary>
    static async Task<long> KvReservedAsync(LoopbackCluster c)
    {
        long reserved = 0;
        for (int i = 0; i < c.Silos.Count; i++)
        {
            if (!c.IsRunning(i)) continue;
            foreach (var line in (await c.GetAsync(i, "/metrics")).Split('\n'))
                if (line.StartsWith("proxyorleans_model_kv_reserved_bytes{", StringComparison.Ordinal))
                    reserved += (long)double.Parse(line.Split(' ')[^1], CultureInfo.InvariantCulture);
        }
        return reserved;
    }

    [Fact]
    public async Task RestartingEverySiloOneAtATimeUnderLoadFailsNoRequestAndChangesNoText()
    {
        var total = Stopwatch.StartNew();
        var log = new StringWriter();
        using var redis = RedisProcess.Start(password: Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16)));
        var clustering = new Dictionary<string, string>
        {
            ["ProxyOrleans:Clustering"] = "redis", ["ProxyOrleans:Redis"] = redis.ConnectionString, ["ProxyOrleans:RedisPassword"] = redis.Password!,
        };
        await using var c = await LoopbackCluster.StartAsync(
            [new("base-1", TinyTrio.Model(TinyTrio.Base)), new("pair-1", TinyTrio.Model(TinyTrio.Expert), TinyTrio.Model(TinyTrio.Anti)),
             new("base-2", TinyTrio.Model(TinyTrio.Base)), new("pair-2", TinyTrio.Model(TinyTrio.Expert), TinyTrio.Model(TinyTrio.Anti))],
            TextWriter.Synchronized(log), clustering);
        output.WriteLine($"4 silo processes up in {total.Elapsed.TotalSeconds:F1} s: " +
                         string.Join(", ", c.Silos.Select((s, i) => $"{s.Name} silo port {c.SiloPorts[i]}, gateway {c.GatewayPorts[i]}")));
        try
        {
            // The fault-free twins: every kind once, concurrently, before anything restarts.
            var twins = await Task.WhenAll(Enumerable.Range(0, Kinds).Select(k => RunOneAsync(c, k, $"rolling-calm-{k}")));
            foreach (var t in twins) Assert.True(t.Error is null && t.Finish == FinishKind.Length, $"fault-free kind {t.Kind}: {t.Error ?? t.Finish.ToString()}");
            Assert.NotEqual(twins[0].Text, twins[1].Text); // the seeded kind really samples
            var baseline = await KvReservedAsync(c);

            // Steady load: each worker runs one stream after another until the rolling restart is over.
            var done = new CancellationTokenSource();
            var outcomes = new System.Collections.Concurrent.ConcurrentBag<Outcome>();
            var load = Enumerable.Range(0, Workers).Select(w => Task.Run(async () =>
            {
                for (int n = 0; !done.IsCancellationRequested; n++)
                    outcomes.Add(await RunOneAsync(c, (w + n) % Kinds, $"rolling-{w}-{n}"));
            })).ToArray();

            var restarts = Stopwatch.StartNew();
            for (int i = 0; i < c.Silos.Count; i++)
            {
                var before = outcomes.Count;
                await Task.Delay(1000); // load on the cluster as it is before the next silo goes
                var step = Stopwatch.StartNew();
                c.Terminate(i);
                var code = await c.WaitForExitAsync(i, TimeSpan.FromSeconds(60));
                Assert.True(code == 0, $"{c.Silos[i].Name} did not drain cleanly: exit {code?.ToString() ?? "none within 60 s"}");
                var exited = step.Elapsed;
                await c.RestartSiloAsync(i);
                output.WriteLine($"{c.Silos[i].Name}: drained and exited in {exited.TotalSeconds:F1} s, replacement ready after {step.Elapsed.TotalSeconds:F1} s; " +
                                 $"{outcomes.Count - before} streams finished meanwhile");
            }
            await Task.Delay(1000); // the last replacement serves too
            done.Cancel();
            await Task.WhenAll(load);
            output.WriteLine($"rolling restart of {c.Silos.Count} silos took {restarts.Elapsed.TotalSeconds:F1} s");

            var all = outcomes.ToList();
            var failed = all.Where(o => o.Error is not null || o.Finish != FinishKind.Length).ToList();
            var differing = all.Where(o => o.Error is null && o.Text != twins[o.Kind].Text).ToList();
            var slowest = all.Max(o => o.Took);
            output.WriteLine($"requests={all.Count} failed={failed.Count} different={differing.Count} with_failover={all.Count(o => o.Failovers > 0)} " +
                             $"median_ms={all.Select(o => o.Took.TotalMilliseconds).Order().ElementAt(all.Count / 2):F0} slowest_ms={slowest.TotalMilliseconds:F0} over_5s={all.Count(o => o.Took.TotalSeconds > 5)} " +
                             $"restarts={c.Silos.Count} seconds={total.Elapsed.TotalSeconds:F1}");
            foreach (var f in failed.Take(5)) output.WriteLine($"failed (kind {f.Kind}): {f.Error ?? f.Finish.ToString()}");
            foreach (var d in differing.Take(5)) output.WriteLine($"kind {d.Kind} ({(d.Kind % 2 == 0 ? "greedy" : "sampled")}) differs:\n  {twins[d.Kind].Text}\n  {d.Text}");
            Assert.True(all.Count >= 4 * Workers, $"only {all.Count} requests ran during the restarts: the load was not steady");
            Assert.Empty(failed);
            Assert.Empty(differing);
            // A stream is a few hundred ms here. A stopping gateway that dropped the answers to the calls it relays left
            // every such call hanging until the client's response timeout (then it resumes): slow, though not failed.
            // The hand-off (ProxyOrleans:GatewayHandOffSeconds) fixed that; what remains is Orleans' own race, a call
            // that reaches a gateway in the instant its silo stops is dropped unanswered ("Failed to address message
            // ... is shutting down"). Under load that happened to 1 stream in ~800: it waits one response timeout
            // (10 s here), then resumes exactly. More than that, or longer, is a hang.
            var hung = all.Where(o => o.Took > TimeSpan.FromSeconds(8)).ToList();
            Assert.True(hung.Count <= Math.Max(1, all.Count / 200) && slowest < LoopbackCluster.ClientResponseTimeout + TimeSpan.FromSeconds(8),
                $"{hung.Count} of {all.Count} streams took over 8 s, the slowest {slowest.TotalSeconds:F1} s: calls hung across a restart");

            // Every finished session freed its KV on every silo, the replacements included.
            var deadline = DateTime.UtcNow.AddSeconds(15); // a lost attempt's cancel is retried for ~12 s, its lease lapses after 5 s
            long reserved;
            while ((reserved = await KvReservedAsync(c)) != baseline && DateTime.UtcNow < deadline) await Task.Delay(250);
            Assert.Equal(baseline, reserved);
        }
        catch
        {
            var text = log.ToString();
            output.WriteLine(text[^Math.Min(text.Length, 12000)..]);
            throw;
        }
    }
}

/// <summary>The hand-off setting is checked when the silo is configured.</summary>
public sealed class GatewayHandOffSettingTests
{
    [Fact]
    public void ANegativeGatewayHandOffIsRefusedNamingTheSetting()
    {
        var config = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["ProxyOrleans:GatewayHandOffSeconds"] = "-1" }).Build();
        var builder = Host.CreateApplicationBuilder();
        var e = Assert.Throws<InvalidOperationException>(() =>
            builder.UseOrleans(silo => ProxyOrleans.Grains.Hosting.SiloHosting.AddProxyOrleans(silo.UseLocalhostClustering(), config)));
        Assert.Contains("ProxyOrleans:GatewayHandOffSeconds", e.Message);
        Assert.Contains("0 or more", e.Message);
    }
}
