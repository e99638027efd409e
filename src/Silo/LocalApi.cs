using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using ProxyOrleans.Gateway;
using ProxyOrleans.Gateway.Tenants;

namespace ProxyOrleans.Silo;

/// <summary>
/// The main job's OpenAI-compatible API and playground: the gateway's endpoints hosted inside the silo process on
/// the silo's own cluster client (a co-hosted client), so one command serves everything and nothing else has to be
/// built, configured or started. A cluster runs the gateway as its own process instead (docs/gateway.md).
/// </summary>
public static class LocalApi
{
    public const string DefaultUrl = "http://127.0.0.1:8000";

    /// <summary>The gateway app on <paramref name="url"/>, configured from the silo's configuration (tenants, limits).</summary>
    public static WebApplication Build(IServiceProvider silo, IConfiguration siloConfig, string url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme != "http" || uri.AbsolutePath != "/")
            throw new ArgumentException($"--api-url '{url}' is not an http URL such as {DefaultUrl} (scheme, host and port only).");
        return GatewayApp.Build([], b =>
        {
            b.Configuration.AddConfiguration(siloConfig);
            b.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                // Without tenants, keyless requests are served, to loopback callers only (TenantAuth).
                ["ProxyOrleans:Gateway:AllowAnonymous"] = siloConfig["ProxyOrleans:Gateway:AllowAnonymous"] ?? "true",
                // The main job's console is for a person: plain warnings, not a JSON line per request.
                ["ProxyOrleans:Gateway:JsonLogs"] = siloConfig["ProxyOrleans:Gateway:JsonLogs"] ?? "false",
                ["Logging:LogLevel:Default"] = siloConfig["Logging:LogLevel:Default"] ?? "Warning",
                ["ProxyOrleans:Gateway:ExportTraces"] = "false", // the silo's exporter sees this process's spans
            });
            b.WebHost.UseUrls(uri.GetLeftPart(UriPartial.Authority));
            b.Services.AddSingleton(silo.GetRequiredService<IClusterClient>());
            b.Services.AddSingleton(silo.GetRequiredService<IGrainFactory>());
            if (!b.Configuration.GetValue("ProxyOrleans:Gateway:JsonLogs", false)) b.Logging.AddSimpleConsole();
        }, addOrleansClient: false);
    }

    /// <summary>What a person needs to use it: the URLs, and whether keys are required.</summary>
    public static IEnumerable<string> Banner(WebApplication api, string url)
    {
        var root = url.TrimEnd('/');
        yield return $"OpenAI-compatible API: {root}/v1   (e.g. curl {root}/v1/models)";
        yield return $"Playground: {root}/playground";
        var tenants = api.Services.GetRequiredService<TenantStore>().All.Count;
        var anonymous = api.Services.GetRequiredService<GatewayOptions>().AllowAnonymous;
        if (tenants > 0)
            yield return $"API keys required ({tenants} tenant(s) configured): send 'Authorization: Bearer <key>'.";
        else if (anonymous)
            yield return "No API keys configured: requests without a key are accepted from this machine (loopback) only. " +
                         "To require keys, start with ProxyOrleans__TenantsFile=tenants.json (format and `hash-key`: docs/gateway.md).";
        else
            yield return "No tenants configured and ProxyOrleans:Gateway:AllowAnonymous is false: every request is refused (401).";
        var host = new Uri(url).Host;
        bool loopbackOnly = host == "localhost" || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));
        if (!loopbackOnly) yield return $"Listening beyond loopback ({host}): callers from other machines need an API key.";
    }
}
