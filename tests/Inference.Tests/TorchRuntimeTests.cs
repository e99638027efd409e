using ProxyOrleans.Inference.Runtime;
using TorchSharp;
using Xunit;

namespace ProxyOrleans.Inference.Tests;

public class TorchRuntimeTests
{
    [Fact]
    public void TorchLoadsAndComputes()
    {
        TorchRuntime.EnsureLoaded();
        using var a = torch.ones(2, 3);
        using var s = a.sum();
        Assert.Equal(6f, s.item<float>());
        Assert.NotEqual("not-found", TorchRuntime.LoadMode);
    }
}
