using ProxyOrleans.Client.Commands;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>
/// The chaos command's short version (CI): tiny models, real silo and gateway processes, one silo killed, one drained and
/// one of the two gateways killed; the streams it cut fail cleanly, none is lost, and no KV stays reserved.
/// </summary>
public sealed class ChaosCommandTests(ITestOutputHelper output)
{
    [Fact]
    public async Task KillsAndDrainsUnderLoadLoseNothingAndLeakNoKv()
    {
        var progress = new StringWriter();
        var result = await ChaosCommand.RunAsync(TinyTrio.Model(TinyTrio.Base), TinyTrio.Model(TinyTrio.Expert), TinyTrio.Model(TinyTrio.Anti),
            new ChaosCommand.ChaosOptions { Streams = 12, Tokens = 40, BaseReplicas = 2, PairReplicas = 2, Kills = 1, Drains = 1, Gateways = 2, GatewayKills = 1, Seed = 3 },
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
        Assert.Equal(result.Requests, result.Identical + result.Different + result.FailedCleanly);
    }
}
