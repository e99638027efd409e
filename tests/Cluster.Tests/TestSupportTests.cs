using ProxyOrleans.Client.Benchmarks;
using Xunit;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>The test support is shared, not copied: one port allocator for the tests and the clusters they start.</summary>
public sealed class TestSupportTests
{
    [Fact]
    public void A_test_and_the_loopback_cluster_it_starts_draw_ports_from_one_allocator()
    {
        // A second compiled copy of the allocator would keep its own set of ports given out, so a port handed to a
        // test could be handed again to a silo of a LoopbackCluster started by the same test process.
        Assert.Same(typeof(LoopbackCluster).Assembly, typeof(LoopbackPorts).Assembly);
        var given = Enumerable.Range(0, 50).Select(_ => LoopbackPorts.Next()).ToList();
        Assert.Equal(given.Count, given.Distinct().Count());
    }
}
