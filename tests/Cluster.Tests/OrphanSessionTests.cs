using System.Diagnostics;
using ProxyOrleans.Abstractions;
using ProxyOrleans.Client.Benchmarks;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>
/// A coordinator's silo SIGKILLed while nobody will resume its generation (its caller, a gateway, died as well): no
/// later attempt opens to free the sessions it had opened on the expert's and anti-expert's silos, so those silos free
/// them when membership declares the coordinator's silo dead. Real silo processes: an in-process kill still runs the
/// coordinator's cleanup and would prove nothing.
/// </summary>
public sealed class OrphanSessionTests(ITestOutputHelper output)
{
    // Fast failure detection (the loopback silos): 1 s probes, 2 missed, 1 vote, then the table refresh.
    const double FreedWithinSeconds = 15;

    [Fact]
    public async Task SessionsOfACoordinatorWhoseSiloWasKilledAreFreedWhenItIsDeclaredDead()
    {
        var log = new StringWriter();
        await using var cluster = await LoopbackCluster.StartAsync(
            // Silo 0 holds the membership table (localhost clustering) and no model: killing it would stop all death declarations.
            [new("primary"), new("base", TinyTrio.Model(TinyTrio.Base)), new("expert", TinyTrio.Model(TinyTrio.Expert)), new("anti", TinyTrio.Model(TinyTrio.Anti))],
            TextWriter.Synchronized(log));
        try
        {
            // Straight to the grain and never read again: nothing resumes the generation once its coordinator is gone.
            var grain = cluster.Grains.GetGrain<IGenerationGrain>(GenerationKeys.Create(TinyTrio.Base, "orphaned"));
            var events = grain.Generate(TinyTrio.Request("Once upon a time", 200)).GetAsyncEnumerator();
            Assert.True(await events.MoveNextAsync());
            Assert.True(await events.MoveNextAsync());
            var held = await cluster.KvReservedBytesAsync();
            Assert.True(await cluster.SiloWithSessionAsync(TinyTrio.Expert) == 2 && held > 0, $"expert session not open ({held} KV bytes)");

            cluster.Kill(1); // the base's silo, with the coordinator beside it
            var sw = Stopwatch.StartNew();
            long left;
            while ((left = await cluster.KvReservedBytesAsync()) > 0 && sw.Elapsed < TimeSpan.FromSeconds(60)) await Task.Delay(200);
            output.WriteLine($"{held} KV bytes before the kill; {left} left on the expert's and anti-expert's silos {sw.Elapsed.TotalSeconds:F1} s after it");
            Assert.Equal(0, left);
            Assert.True(sw.Elapsed.TotalSeconds <= FreedWithinSeconds, $"freed only {sw.Elapsed.TotalSeconds:F1} s after the kill (bound {FreedWithinSeconds} s)");
            _ = events.DisposeAsync().AsTask().ContinueWith(t => _ = t.Exception, TaskScheduler.Default); // its coordinator is gone
        }
        catch
        {
            output.WriteLine(log.ToString()[^Math.Min(log.ToString().Length, 6000)..]);
            throw;
        }
    }
}
