using System.Runtime.InteropServices;
using ProxyOrleans.Abstractions;
using ProxyOrleans.Client.Benchmarks;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>Real silo processes (src/Silo) on loopback TCP and a client: the same guarantees over real sockets.</summary>
public sealed class MultiProcessTests(ITestOutputHelper output)
{
    private const string Prompt = "In 1492, Columbus";

    [Fact]
    public async Task ThreeSiloProcessesMatchTheSingleProcessPathAndSurviveTheBaseProcessDying()
    {
        var log = new StringWriter();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        await using var c = await LoopbackCluster.StartAsync(
            // The expert's silo is the localhost-clustering primary (it holds the membership table); the base silo can die.
            [new("expert", TinyTrio.Model(TinyTrio.Expert)), new("base", TinyTrio.Model(TinyTrio.Base)), new("anti", TinyTrio.Model(TinyTrio.Anti))],
            TextWriter.Synchronized(log));
        output.WriteLine($"3 silo processes up in {sw.Elapsed.TotalSeconds:F1} s");
        try
        {
            // 1. Exactness over real sockets.
            var reference = TinyTrio.Reference(Prompt, 20);
            var (tokens, text, events) = await TinyTrio.Collect(
                GenerationClient.StreamAsync(c.Grains, TinyTrio.Request(Prompt, 20) with { ReturnLogits = true }, "mp-exact"));
            Assert.Equal(reference.TokenIds, tokens);
            Assert.Equal(reference.Text, text);
            var expected = TinyTrio.ReferenceLogits(Prompt, tokens);
            float worst = 0;
            var withLogits = events.Where(e => e.Logits is not null).ToList();
            for (int i = 0; i < withLogits.Count; i++)
            {
                var got = MemoryMarshal.Cast<byte, float>(withLogits[i].Logits);
                for (int j = 0; j < got.Length; j++) worst = Math.Max(worst, Math.Abs(got[j] - expected[i][j]));
            }
            var st = events[^1].Stats!;
            output.WriteLine($"max |Δ combined logit| {worst:G3}; step {st.StepMs:F2} ms (models {st.ModelMs:F2}, fan-out {st.FanOutMs:F2}), " +
                             $"{st.BytesPerStep / 1024:F0} KiB/step over the wire; {st.Layout}");
            Assert.True(worst <= 1e-5f, $"max |Δlogit| {worst}");
            Assert.Contains("ready", await c.GetAsync(1, "/readyz"));
            // Exported by the OpenTelemetry Prometheus exporter (which adds its otel_scope_name label).
            var metrics = await c.GetAsync(1, "/metrics");
            Assert.Matches("proxyorleans_model_steps_total\\{[^}]*model=\"tiny-base\"[^}]*\\} [1-9]", metrics);
            // Not simulated: all of the model's compute ran on this host's CPU.
            Assert.Matches("proxyorleans_model_host_compute_seconds_total\\{[^}]*model=\"tiny-base\"[^}]*\\} [0-9.eE-]*[1-9]", metrics);

            // 2. A second base process joins; the base process serving the generation is killed mid-way.
            await c.AddSiloAsync(new("base2", TinyTrio.Model(TinyTrio.Base)));
            var reference2 = TinyTrio.Reference(Prompt, 30);
            int killed = -1;
            sw.Restart();
            var (tokens2, text2, _) = await TinyTrio.Collect(GenerationClient.StreamAsync(c.Grains, TinyTrio.Request(Prompt, 30), "mp-kill"), async ev =>
            {
                if (ev.Step == 6 && killed < 0)
                {
                    killed = await c.SiloWithSessionAsync(TinyTrio.Base);
                    Assert.True(killed >= 0, "no silo reports an open base session");
                    output.WriteLine($"killing silo process {c.Silos[killed].Name} after step 6");
                    c.Kill(killed);
                }
            });
            output.WriteLine($"generation with the kill took {sw.Elapsed.TotalSeconds:F1} s");
            Assert.True(killed >= 0);
            Assert.Equal(reference2.TokenIds, tokens2);
            Assert.Equal(reference2.Text, text2);
        }
        catch
        {
            output.WriteLine(log.ToString());
            throw;
        }
    }
}
