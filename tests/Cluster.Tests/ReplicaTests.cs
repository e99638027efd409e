using ProxyOrleans.Abstractions;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Cluster.Tests;

public sealed class ReplicaTests(ITestOutputHelper output)
{
    [Fact]
    public async Task RequestsSpreadOverTheReplicasOfAModel()
    {
        await using var c = await InProcessCluster.StartAsync(TinyTrio.PathOf, [TinyTrio.Base], [TinyTrio.Expert], [TinyTrio.Anti], [TinyTrio.Expert]);
        var reference = TinyTrio.Reference("Once upon a time", 4);
        var results = await Task.WhenAll(Enumerable.Range(0, 12).Select(i =>
            TinyTrio.Collect(GenerationClient.StreamAsync(c.Grains, TinyTrio.Request("Once upon a time", 4), $"spread-{i}"))));
        Assert.All(results, r => Assert.Equal(reference.TokenIds, r.Tokens));
        long first = c.Hosted(1).Find(TinyTrio.Expert)!.Prefills, second = c.Hosted(3).Find(TinyTrio.Expert)!.Prefills;
        output.WriteLine($"expert prefills per replica: {first} and {second}");
        Assert.True(first > 0 && second > 0, $"one replica took everything: {first} / {second}");
    }
}
