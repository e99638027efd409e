using ProxyOrleans.Client.Benchmarks;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>
/// The chaos command's short version (CI): tiny models, real silo and gateway processes, one silo killed, one drained and
/// one of the two gateways killed; the streams it cut fail cleanly, none is lost, and no KV stays reserved. The streams
/// cover greedy, top_p, top_k, a stop sequence that fires and n = 2, and every choice that was not cut has its
/// fault-free text.
/// </summary>
public sealed class ChaosCommandTests(ITestOutputHelper output)
{
    [Fact]
    public async Task KillsAndDrainsUnderLoadLoseNothingAndLeakNoKv()
    {
        var progress = new StringWriter();
        var result = await ChaosRun.RunAsync(TinyTrio.Model(TinyTrio.Base), TinyTrio.Model(TinyTrio.Expert), TinyTrio.Model(TinyTrio.Anti),
            new ChaosOptions { Streams = 12, Tokens = 40, BaseReplicas = 2, PairReplicas = 2, Kills = 1, Drains = 1, Gateways = 2, GatewayKills = 1, Seed = 3 },
            TextWriter.Synchronized(progress), null, CancellationToken.None);
        output.WriteLine(progress.ToString());
        output.WriteLine(result.KeyValues);
        Assert.Equal(12, result.Requests);
        Assert.Equal(1, result.Killed);
        Assert.Equal(1, result.Drained);
        Assert.Equal(1, result.GatewaysKilled);
        // The killed gateway's streams that were still running were cut: each a clean failure naming its gateway.
        Assert.True(result.FailedCleanly >= 1, "the gateway was killed after its streams had finished: nothing checked that a cut stream fails cleanly.");
        Assert.Contains("was cut", progress.ToString());
        Assert.Equal(0, result.Lost);
        Assert.Equal(0, result.KvLeakBytes);
        Assert.Equal(0, result.DrainFailures);
        Assert.Equal(0, result.Different);
        // 12 streams, kinds cycling greedy, top_p, top_k, stop, n = 2: 2 two-choice streams, so 14 choices, each one
        // either identical to its fault-free twin or cut by the gateway kill.
        Assert.Equal(14, result.Choices);
        Assert.Equal(result.Choices, result.Identical + result.FailedCleanly);
        foreach (var kind in Enum.GetValues<ChaosStreamKind>())
        {
            Assert.True(result.Mix[kind] >= 2, $"the mix has {result.Mix[kind]} {kind} streams; expected at least 2.");
            // Each kind goes through both gateways, so the surviving one carried at least one of it to the end.
            Assert.True(result.IdenticalByKind[kind] >= 1, $"no {kind} choice was compared identical: the kind was not checked under faults.");
        }
        Assert.True(result.StopsFired >= 1, "no stop sequence ended its stream in the fault-free run: the stop streams checked nothing a plain stream does not.");
    }
}
