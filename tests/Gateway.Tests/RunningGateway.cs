using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace ProxyOrleans.Gateway.Tests;

/// <summary>The real gateway (Program's GatewayApp) on Kestrel, 127.0.0.1 and a free port, as an Orleans client of the test cluster.</summary>
public sealed class RunningGateway : IAsyncDisposable
{
    public required WebApplication App { get; init; }
    public required Uri BaseUri { get; init; }
    public required HttpClient Http { get; init; }

    /// <param name="extraUrls">More addresses to listen on (e.g. an internal metrics port); the first, free port is the API's.</param>
    public static async Task<RunningGateway> StartAsync(IDictionary<string, string?> settings, params string[] extraUrls)
    {
        var app = GatewayApp.Build([], b =>
        {
            b.Configuration.AddInMemoryCollection(settings);
            b.WebHost.UseUrls(["http://127.0.0.1:0", .. extraUrls]);
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .First(a => !extraUrls.Any(x => new Uri(x).Port == new Uri(a).Port));
        var uri = new Uri(address);
        return new RunningGateway
        {
            App = app, BaseUri = uri,
            Http = new HttpClient { BaseAddress = uri, Timeout = TimeSpan.FromMinutes(2) },
        };
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
