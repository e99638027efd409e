using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;
using OpenTelemetry.Metrics;
using Orleans.Dashboard;
using Orleans.Hosting;
using ProxyOrleans.Abstractions;
using ProxyOrleans.Grains.Hosting;
using ProxyOrleans.Grains.Models;
using ProxyOrleans.Grains.Placement;
using ProxyOrleans.Inference.Decoding;

namespace ProxyOrleans.Silo;

/// <summary>
/// Builds a ProxyOrleans silo process: models from configuration (or all bundled demo models), localhost or Redis
/// clustering, POD_NAME/POD_IP, and /healthz /readyz /metrics on ProxyOrleans:HttpPort.
/// </summary>
public static class SiloHost
{
    /// <summary>Translates the command line into configuration keys (<see cref="SiloCommandLine"/>).</summary>
    public static Dictionary<string, string?> ParseArgs(string[] args, out List<string> rest) => SiloCommandLine.Parse(args, out rest);

    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var options = ParseArgs(args, out var rest);
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [.. rest] });
        builder.Configuration.AddInMemoryCollection(options);
        var config = builder.Configuration;
        AddDemoDefaults(config);

        var po = config.GetSection(ProxyOrleansOptions.Section);
        int siloPort = po.GetValue("SiloPort", 11111);
        int gatewayPort = po.GetValue("GatewayPort", 30000);
        int httpPort = po.GetValue("HttpPort", 8080 + siloPort - 11111);
        string clusterId = po.GetValue("ClusterId", "proxyorleans")!;
        string serviceId = po.GetValue("ServiceId", "proxyorleans")!;
        string clustering = po.GetValue("Clustering", "localhost")!.ToLowerInvariant();

        // --http-port 0: no health endpoints. Kestrel with no endpoint would take localhost:5000 (and collide with
        // the next such silo), so it gets an ephemeral loopback port nobody is told about.
        builder.WebHost.UseKestrel(k => { if (httpPort > 0) k.ListenAnyIP(httpPort); else k.Listen(IPAddress.Loopback, 0); });
        // Structured logs, as the gateway writes them, for log collectors; plain text where a person reads the
        // console (the main job and other silos on the bundled demo models).
        if (po.GetValue("JsonLogs", !config.GetValue(BundledDemoModelsKey, false)))
        {
            builder.Logging.ClearProviders();
            builder.Logging.AddJsonConsole(o => { o.IncludeScopes = true; o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ"; o.UseUtcTimestamp = true; });
        }
        builder.Logging.AddFilter("Orleans", Microsoft.Extensions.Logging.LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.AspNetCore", Microsoft.Extensions.Logging.LogLevel.Warning);
        builder.Logging.AddFilter("Polly", Microsoft.Extensions.Logging.LogLevel.Warning);
        builder.UseOrleans(silo =>
        {
            var podIp = Environment.GetEnvironmentVariable("POD_IP");
            var siloName = Environment.GetEnvironmentVariable("POD_NAME") ?? po["SiloName"];
            switch (clustering)
            {
                case "localhost":
                    int? primary = po.GetValue<int?>("PrimarySiloPort");
                    silo.UseLocalhostClustering(siloPort, gatewayPort,
                        primary is int p && p != siloPort ? new IPEndPoint(IPAddress.Loopback, p) : null, serviceId, clusterId);
                    break;
                case "redis":
                    var redis = ProxyOrleans.Gateway.RedisConnection.Options(config);
                    silo.UseRedisClustering(o => o.ConfigurationOptions = redis);
                    silo.Configure<ClusterOptions>(o => { o.ClusterId = clusterId; o.ServiceId = serviceId; });
                    silo.ConfigureEndpoints(podIp is not null ? IPAddress.Parse(podIp) : IPAddress.Loopback, siloPort, gatewayPort, listenOnAnyHostAddress: true);
                    break;
                default:
                    throw new InvalidOperationException($"ProxyOrleans:Clustering must be 'localhost' or 'redis'; got '{clustering}'.");
            }
            if (siloName is not null) silo.Configure<SiloOptions>(o => o.SiloName = siloName);
            if (po.GetValue("FastFailureDetection", false)) silo.UseFastFailureDetection();
            silo.AddProxyOrleans(config);
            if (Dashboard.Enabled(config)) silo.AddDashboard();
        });
        builder.Services.AddSingleton<SiloMetrics>();
        builder.Services.AddOpenTelemetry().WithMetrics(m => m.AddMeter(SiloMetrics.MeterName, "Microsoft.Orleans").AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0)); // a scrape sees the sessions open now
        if (ProxyOrleans.Gateway.Operations.TraceExport.Enabled(config)) ProxyOrleans.Gateway.Operations.TraceExport.AddTo(builder.Services);
        configure?.Invoke(builder);

        // Checked before the host is built: a dashboard without a password must not start.
        byte[]? dashboardPassword = Dashboard.Enabled(config) ? Dashboard.PasswordHash(config) : null;
        if (dashboardPassword is not null && httpPort <= 0)
            throw new InvalidOperationException("ProxyOrleans:Dashboard:Enabled needs the silo's HTTP port (--http-port > 0): the dashboard is served there.");
        var app = builder.Build();
        if (dashboardPassword is not null) Dashboard.Map(app, dashboardPassword);
        if (httpPort > 0) MapHealth(app);
        return app;
    }

    /// <summary>Set (true) when no models were configured and the silo hosts the bundled demo models: the local main job.</summary>
    public const string BundledDemoModelsKey = "ProxyOrleans:HostsBundledDemoModels";

    /// <summary>No models configured: host every bundled demo model, and the demo combination when its models are there.</summary>
    private static void AddDemoDefaults(ConfigurationManager config)
    {
        var po = config.GetSection(ProxyOrleansOptions.Section);
        // Models configured, or a model list advertised explicitly (even an empty one: a coordinator-only silo).
        if (po.GetSection("Models").GetChildren().Any() || config["Orleans:Metadata:" + ProxyOrleansOptions.ModelsMetadataKey] is not null) return;
        var demo = ModelCatalog.FindDemoModelsDirectory();
        var dirs = demo is null ? [] : Directory.GetDirectories(demo).Where(d => File.Exists(Path.Combine(d, "config.json"))).Order(StringComparer.Ordinal).ToArray();
        if (dirs.Length == 0)
            throw new InvalidOperationException(
                "No models to host: ProxyOrleans:Models is not configured and no bundled demo models were found in models/demo/. " +
                "Train them with `dotnet run --project src/Training -c Release` (see README), or point the silo at model " +
                "directories: `dotnet run --project src/Silo -c Release -- --models base=/path/to/base,expert=/path/to/expert`.");
        var d = new Dictionary<string, string?> { [BundledDemoModelsKey] = "true" };
        for (int i = 0; i < dirs.Length; i++)
        {
            d[$"ProxyOrleans:Models:{i}:Name"] = Path.GetFileName(dirs[i]);
            d[$"ProxyOrleans:Models:{i}:Path"] = dirs[i];
        }
        var names = dirs.Select(Path.GetFileName).ToHashSet();
        if (!po.GetSection("Combinations").GetChildren().Any() && names.IsSupersetOf(["base-large", "tuned-small", "base-small"]))
        {
            d["ProxyOrleans:Combinations:proxy-large:Base"] = "base-large";
            d["ProxyOrleans:Combinations:proxy-large:Alpha"] = "1";
            d["ProxyOrleans:Combinations:proxy-large:Experts:0:Expert"] = "tuned-small";
            d["ProxyOrleans:Combinations:proxy-large:Experts:0:AntiExpert"] = "base-small";
            d["ProxyOrleans:Combinations:proxy-large:Experts:0:Weight"] = "1";
            // The reference's zero-shot prompts: the base and anti-expert are asked "Question: …\nAnswer:", the
            // expert answers after its chat template and "Answer:".
            d["ProxyOrleans:Combinations:proxy-large:AnswerCue"] = "Question: {prompt}\nAnswer:";
            d["ProxyOrleans:Combinations:proxy-large:ExpertResponsePrefix"] = "Answer:";
        }
        config.AddInMemoryCollection(d);
    }

    private static void MapHealth(WebApplication app)
    {
        app.MapGet("/healthz", () => Results.Text("ok"));
        app.MapGet("/readyz", async (IServiceProvider sp) =>
        {
            var hosted = sp.GetRequiredService<HostedModels>();
            if (hosted.Draining) return Results.Text("draining", statusCode: 503);
            try
            {
                var models = await sp.GetRequiredService<IGrainFactory>().GetGrain<IModelDirectoryGrain>(DirectoryKeys.Default).GetModels();
                var mine = sp.GetRequiredService<ModelDirectory>();
                var local = mine.ModelsOf(mine.LocalSilo);
                if (!hosted.Names.All(local.Contains)) return Results.Text("models not advertised yet", statusCode: 503);
                var missing = models.Combinations.Where(c => !c.Ready).Select(c => $"{c.Name} (missing {string.Join(", ", c.MissingModels)})").ToList();
                return missing.Count == 0 ? Results.Text("ready") : Results.Text("not ready: " + string.Join("; ", missing), statusCode: 503);
            }
            catch (Exception e) { return Results.Text("not ready: " + e.Message, statusCode: 503); }
        });
        // Prometheus text by the OpenTelemetry exporter: this silo's models (SiloMetrics) and Orleans' own meter.
        app.Services.GetRequiredService<SiloMetrics>(); // its instruments exist from now on
        app.MapPrometheusScrapingEndpoint();
    }
}
