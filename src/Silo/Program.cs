using Microsoft.Extensions.Configuration;
using ProxyOrleans.Abstractions;
using ProxyOrleans.Silo;

WebApplication app;
try
{
    app = SiloHost.Build(args);
}
catch (SiloHost.HelpRequestedException)
{
    Console.WriteLine(SiloHost.Usage);
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
bool demo = config.GetValue("ProxyOrleans:Demo", args.Length == 0);
if (demo) await Demo.RunAsync(app.Services.GetRequiredService<IGrainFactory>(), config, app.Lifetime.ApplicationStopping);
await app.WaitForShutdownAsync();
return 0;
