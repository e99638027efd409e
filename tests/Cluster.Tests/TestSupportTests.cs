using ProxyOrleans.Client.Benchmarks;
using Xunit;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>
/// The test support is shared, not copied: one port allocator for the tests and the clusters they start, one finder of
/// the built hosts for the tests and the bench commands.
/// </summary>
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

    [Fact]
    public void The_hosts_a_test_starts_are_the_builds_of_its_own_configuration()
    {
        // bin/<configuration>/net10.0/linux-x64/ of this test: a Release test must not start a stale Debug silo.
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Parent!.Name;
        foreach (var dll in new[] { RepositoryLayout.BuiltDll("Silo"), RepositoryLayout.BuiltDll("Gateway"), RepositoryLayout.BuiltDll("Client", assemblyName: "proxyorleans") })
        {
            Assert.True(File.Exists(dll), dll);
            Assert.StartsWith(Path.Combine(RepositoryLayout.Root(), "src"), dll);
            Assert.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}{configuration}{Path.DirectorySeparatorChar}", dll);
        }
    }

    [Fact]
    public void A_host_that_is_not_built_is_an_error_naming_the_command_that_builds_it()
    {
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Parent!.Name;
        var e = Assert.Throws<FileNotFoundException>(() => RepositoryLayout.BuiltDll("NoSuchHost"));
        Assert.Contains($"`dotnet build src/NoSuchHost -c {configuration}`", e.Message);
    }
}
