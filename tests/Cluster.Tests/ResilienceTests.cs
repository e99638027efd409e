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

    [Fact]
    public void ResumesOutlastDefaultFailureDetection()
    {
        // A client must keep resuming for longer than a production cluster takes to declare a dead silo dead
        // (tens of seconds with Orleans' defaults); the five resumes of 0.25..4 s gave up after 7.75 s.
        var span = Enumerable.Range(1, GenerationClient.DefaultMaxResumes).Sum(a => GenerationClient.ResumeDelay(a).TotalSeconds);
        Assert.True(span >= 60, $"resumes span {span} s");
        Assert.Equal(TimeSpan.FromMilliseconds(250), GenerationClient.ResumeDelay(1));
        Assert.Equal(TimeSpan.FromSeconds(8), GenerationClient.ResumeDelay(GenerationClient.DefaultMaxResumes));
        // A coordinator not yet lost stays cheap to cancel: every attempt's key is cancelled (one call each).
        Assert.True(GenerationClient.DefaultMaxResumes <= 16);
        Assert.False(GenerationClient.IsCoordinatorLost(new InvalidRequestException("prompt", "empty")));
        Assert.True(GenerationClient.IsCoordinatorLost(new CoordinatorDrainingException("draining")));
    }
}
