using Microsoft.Extensions.Configuration;
using ProxyOrleans.Abstractions;
using ProxyOrleans.Silo;

WebApplication app;
try
{
    app = SiloHost.Build(args);
}
catch (SiloCommandLine.HelpRequestedException help)
{
    help.Print();
    return 0;
}
catch (Exception e) when (e is InvalidOperationException or ArgumentException or DirectoryNotFoundException)
{
    Console.Error.WriteLine("error: " + e.Message);
    return 2;
}

try
{
    await app.StartAsync();
}
catch (Exception e)
{
    Console.Error.WriteLine("error: the silo did not start: " + e.Message);
    return 1;
}
var config = app.Services.GetRequiredService<IConfiguration>();
var hosted = app.Services.GetRequiredService<ProxyOrleans.Grains.Models.HostedModels>();
Console.WriteLine($"Silo up, hosting [{string.Join(", ", hosted.Names)}]. Ctrl+C to stop (running generations finish first).");

// The local main job (no options, bundled demo models) also serves the OpenAI API and the playground.
WebApplication? api = null;
if (config.GetValue("ProxyOrleans:Api", args.Length == 0 && config.GetValue(SiloHost.BundledDemoModelsKey, false)))
{
    var url = config["ProxyOrleans:ApiUrl"] ?? LocalApi.DefaultUrl;
    try
    {
        api = LocalApi.Build(app.Services, config, url);
        await api.StartAsync();
    }
    catch (Exception e)
    {
        Console.Error.WriteLine(e is IOException
            ? $"error: the API could not listen on {url}: {e.Message.TrimEnd('.')}. Is another main job running? Use --api-url http://127.0.0.1:<port> or --no-api."
            : $"error: the API did not start: {e.Message}");
        await app.StopAsync();
        return e is InvalidOperationException or ArgumentException ? 2 : 1;
    }
    foreach (var line in LocalApi.Banner(api, url)) Console.WriteLine(line);
    // Either host stopping (Ctrl+C / SIGTERM reach both; or a fatal silo error) stops the other.
    app.Lifetime.ApplicationStopping.Register(api.Lifetime.StopApplication);
    api.Lifetime.ApplicationStopping.Register(app.Lifetime.StopApplication);
}

bool demo = config.GetValue("ProxyOrleans:Demo", args.Length == 0);
if (demo) await Demo.RunAsync(app.Services.GetRequiredService<IGrainFactory>(), config, app.Lifetime.ApplicationStopping);
await Task.WhenAll(app.WaitForShutdownAsync(), api?.WaitForShutdownAsync() ?? Task.CompletedTask);
return 0;
