using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ProxyOrleans.Grains.Hosting;
using ProxyOrleans.Silo;
using TorchSharp;
using Xunit;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>ProxyOrleans:Device and :Threads reach the models a silo loads (src/Silo's host, as the pods run it).</summary>
public sealed class SiloDeviceTests
{
    private static string[] Args(params string[] more) =>
        ["--models", $"{TinyTrio.Base}={TinyTrio.Dir(TinyTrio.Base)}", "--silo-port", "11931", "--gateway-port", "30931", "--http-port", "0", "--no-demo", .. more];

    private static async Task<Exception?> StartAndStop(string[] args) => await Record.ExceptionAsync(async () =>
    {
        await using var app = SiloHost.Build(args);
        await app.StartAsync();
        await app.StopAsync();
    });

    private static string Messages(Exception e)
    {
        var all = new List<string>();
        for (Exception? x = e; x is not null; x = x.InnerException) all.Add(x.Message);
        if (e is AggregateException a) all.AddRange(a.Flatten().InnerExceptions.Select(i => i.Message));
        return string.Join(" | ", all);
    }

    [Theory]
    [InlineData("--device", "cuda")]                  // the silo's own option
    [InlineData("--ProxyOrleans:Device=cuda", null)]  // the configuration key (env ProxyOrleans__Device=cuda, the GPU overlay)
    public async Task CudaOnACpuOnlyBuildFailsAtStartWithTheInferenceLibrarysMessage(string option, string? value)
    {
        if (torch.cuda.is_available()) return; // only meaningful where this build has no CUDA backend
        var e = await StartAndStop(value is null ? Args(option) : Args(option, value));
        Assert.NotNull(e);
        var text = Messages(e);
        Assert.Contains("no usable CUDA backend", text);
        Assert.Contains(TinyTrio.Base, text); // names the model
        Assert.Contains("TorchBackend=cuda", text); // says what to do
    }

    [Fact]
    public void DeviceAndThreadsFromOptionsAndConfigurationReachTheInferenceOptions()
    {
        using var app = SiloHost.Build(Args("--device", "cpu", "--threads", "1"));
        var o = app.Services.GetRequiredService<IOptions<ProxyOrleansOptions>>().Value.Inference("m");
        Assert.Equal(("m", "cpu", 1), (o.Name, o.Device, o.Threads));
        using var configured = SiloHost.Build(Args("--ProxyOrleans:Threads=2", "--ProxyOrleans:Device=cuda:1"));
        var c = configured.Services.GetRequiredService<IOptions<ProxyOrleansOptions>>().Value.Inference("m");
        Assert.Equal(("cuda:1", 2), (c.Device, c.Threads));
    }
}
