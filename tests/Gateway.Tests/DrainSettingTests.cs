using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace ProxyOrleans.Gateway.Tests;

/// <summary>The drain settings (docs/gateway.md, "Stopping a gateway") are checked at start and size the host's shutdown.</summary>
public sealed class DrainSettingTests
{
    static WebApplication Build(Dictionary<string, string?> settings) =>
        GatewayApp.Build([], b => b.Configuration.AddInMemoryCollection(settings));

    [Theory]
    [InlineData("ProxyOrleans:Gateway:DrainGraceSeconds", "-1")]
    [InlineData("ProxyOrleans:Gateway:DrainGraceSeconds", "NaN")]
    [InlineData("ProxyOrleans:Gateway:DrainDelaySeconds", "100000")]
    public void A_bad_drain_setting_is_refused_at_start_naming_the_key(string key, string value)
    {
        var e = Assert.Throws<InvalidOperationException>(() => Build(new() { [key] = value }));
        Assert.Contains(key, e.Message);
        Assert.Contains("from 0 to 3600", e.Message);
    }

    [Fact]
    public async Task The_host_waits_for_the_whole_drain_and_never_less_than_its_configured_shutdown()
    {
        await using (var app = Build(new() { ["ProxyOrleans:Gateway:DrainDelaySeconds"] = "5", ["ProxyOrleans:Gateway:DrainGraceSeconds"] = "90" }))
            Assert.Equal(TimeSpan.FromSeconds(105), app.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout);
        // The defaults: no delay, 20 s grace, so ASP.NET Core's own 30 s.
        await using (var app = Build([]))
            Assert.Equal(TimeSpan.FromSeconds(30), app.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout);
        // A longer shutdown timeout given to the host (DOTNET_shutdownTimeoutSeconds) stays.
        await using (var app = Build(new() { ["shutdownTimeoutSeconds"] = "200" }))
            Assert.Equal(TimeSpan.FromSeconds(200), app.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout);
    }
}
