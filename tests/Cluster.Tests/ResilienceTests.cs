using ProxyOrleans.Abstractions;
using ProxyOrleans.Grains;
using Xunit;

namespace ProxyOrleans.Cluster.Tests;

public sealed class ResilienceTests
{
    [Fact]
    public void OnlyTransientFaultsAreRetried()
    {
        Assert.True(Resilience.IsTransient(new SiloUnavailableException("gone")));
        Assert.True(Resilience.IsTransient(new TimeoutException()));
        Assert.True(Resilience.IsTransient(new Grains.Models.ModelDrainingException("draining")));
        Assert.False(Resilience.IsTransient(new OrleansException("No active nodes are compatible with grain model/x")));
        Assert.False(Resilience.IsTransient(new ModelNotHostedException("x", ["y"])));
        Assert.False(Resilience.IsTransient(new CapacityExceededException("full")));
        Assert.False(Resilience.IsTransient(new SessionNotFoundException("lost")));
        Assert.False(Resilience.IsTransient(new InvalidRequestException("prompt", "empty")));
    }
}
