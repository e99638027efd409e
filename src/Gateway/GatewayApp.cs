using System.Text.Json;
using OpenTelemetry.Metrics;
using ProxyOrleans.Gateway.Generation;
using ProxyOrleans.Gateway.OpenAi;
using ProxyOrleans.Gateway.Operations;
using ProxyOrleans.Gateway.Tenants;

namespace ProxyOrleans.Gateway;

/// <summary>
/// Builds the gateway: an ASP.NET Core host that is an Orleans client of the silo cluster (a separate process,
/// so it scales on its own behind a load balancer / HPA) and speaks OpenAI's HTTP API.
/// </summary>
public static class GatewayApp
{
    /// <param name="configureBuilder">Tests: extra configuration or services (e.g. Kestrel on 127.0.0.1:0).</param>
    /// <param name="addOrleansClient">False when the caller registers its own IClusterClient (an in-process test cluster's).</param>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configureBuilder = null, bool addOrleansClient = true)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        configureBuilder?.Invoke(builder);
        var config = builder.Configuration;

        var options = config.GetSection("ProxyOrleans:Gateway").Get<GatewayOptions>() ?? new GatewayOptions();
        if (!double.IsFinite(options.CoordinatorLeaseSeconds) || options.CoordinatorLeaseSeconds < 0)
            throw new InvalidOperationException(
                $"ProxyOrleans:Gateway:CoordinatorLeaseSeconds is {options.CoordinatorLeaseSeconds}: give 0 (off) or a positive number of seconds (default 5).");
        foreach (var (name, value) in new[] { ("DrainDelaySeconds", options.DrainDelaySeconds), ("DrainGraceSeconds", options.DrainGraceSeconds) })
            if (!double.IsFinite(value) || value < 0 || value > 3600)
                throw new InvalidOperationException($"ProxyOrleans:Gateway:{name} is {value}: give a number of seconds from 0 to 3600 (see docs/gateway.md, \"Stopping a gateway\").");
        builder.Services.AddSingleton(options);
        // The host calls its StoppingAsync before it stops any service (Kestrel, the Orleans client).
        builder.Services.AddSingleton<GatewayDrain>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<GatewayDrain>());
        // The host must wait for the whole drain (ASP.NET Core's default is 30 s; DOTNET_shutdownTimeoutSeconds may say more).
        builder.Services.PostConfigure<HostOptions>(o =>
        {
            if (o.ShutdownTimeout < GatewayDrain.ShutdownTimeout(options)) o.ShutdownTimeout = GatewayDrain.ShutdownTimeout(options);
        });
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.Encoder = JsonOut.Options.Encoder);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton(_ => TenantStore.FromConfiguration(config));
        builder.Services.AddSingleton<TenantAuth>();
        builder.Services.AddSingleton<QuotaLimiter>();
        builder.Services.AddSingleton<ClusterRequests>();
        builder.Services.AddSingleton<RequestRegistry>();
        builder.Services.AddSingleton<ModelCatalog>();
        builder.Services.AddSingleton<GatewayMetrics>();
        builder.Services.AddSingleton<CompletionHandler>();
        builder.Services.AddSingleton<TokenizeEndpoints>();
        builder.Services.AddSingleton<IGenerationBackend, OrleansGenerationBackend>();
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes + 1);

        if (config.GetValue("ProxyOrleans:Gateway:JsonLogs", true))
        {
            builder.Logging.ClearProviders();
            // Per-request framework chatter off by default; our own request logs carry RequestId/Tenant/Model.
            builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
            builder.Logging.AddFilter("Orleans", LogLevel.Warning);
            builder.Logging.AddJsonConsole(o => { o.IncludeScopes = true; o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ"; o.UseUtcTimestamp = true; });
        }

        builder.Services.AddOpenTelemetry().WithMetrics(m => m
            .AddMeter(GatewayMetrics.MeterName, "Microsoft.Orleans", "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel")
            .AddPrometheusExporter());

        // In the main job the silo exports the process's spans (one exporter per process, not two).
        if (TraceExport.Enabled(config) && config.GetValue("ProxyOrleans:Gateway:ExportTraces", true)) TraceExport.AddTo(builder.Services);

        if (addOrleansClient) builder.UseOrleansClient(client => OrleansClientSetup.Configure(client, config));
        // Kestrel answers /healthz (and /readyz: 503) while the Orleans client is still connecting.
        builder.Services.Configure<HostOptions>(o => o.ServicesStartConcurrently = true);

        var app = builder.Build();
        // Fail at start, not on the first request, when tenants or combinations are misconfigured.
        _ = app.Services.GetRequiredService<TenantStore>();
        _ = app.Services.GetRequiredService<ModelCatalog>().Configured;
        Map(app);
        return app;
    }

    static void Map(WebApplication app)
    {
        app.Use(async (ctx, next) =>
        {
            try { await next(ctx); }
            finally
            {
                // Route pattern, not the raw path: unknown URLs must not blow up the label set.
                var route = (ctx.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "other";
                ctx.RequestServices.GetRequiredService<GatewayMetrics>().Requests.Add(1,
                    new KeyValuePair<string, object?>("route", route),
                    new KeyValuePair<string, object?>("model", ctx.Items["proxyorleans.model"] as string ?? ""),
                    new KeyValuePair<string, object?>("status", ctx.Response.StatusCode));
            }
        });
        app.Use(async (ctx, next) =>
        {
            try { await next(ctx); }
            catch (ApiError e) { await Answer(ctx, e); }
            catch (BadHttpRequestException e)
            {
                await Answer(ctx, new ApiError(e.StatusCode, $"Bad request: {e.Message}", "invalid_request_error", null, "bad_request", "invalid_request"));
            }
            catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested) { /* client went away */ }
            catch (Exception e)
            {
                // Nothing a client sends may take the gateway down: log it, answer 500, keep serving.
                ctx.RequestServices.GetRequiredService<ILogger<WebApplication>>().LogError(e, "Unhandled error on {Path}", ctx.Request.Path);
                await Answer(ctx, new ApiError(500, "The server had an error while processing your request.", "server_error", null, "internal_error", "internal_error"));
            }
        });

        app.MapGet("/healthz", () => Results.Json(new { status = "ok" }));
        app.MapGet("/readyz", async (ModelCatalog catalog, GatewayDrain drain, CancellationToken ct) =>
        {
            // Stopping: not ready at once, so that the load balancer sends elsewhere while this replica finishes its requests.
            if (drain.Draining) return Results.Json(new { status = "draining" }, statusCode: 503);
            await catalog.RefreshAsync(ct, force: true);
            var missing = catalog.MissingModels();
            var ready = catalog.Ready;
            return Results.Json(new { status = ready ? "ready" : "not ready", hosted = catalog.Hosted.Order(), missing, error = catalog.Error },
                statusCode: ready ? 200 : 503);
        });
        // Per-tenant series only on the internal port (when configured); the API port's /metrics has none.
        if (TenantMetricsEndpoint.Port(app.Configuration) is > 0 and var tenantPort) TenantMetricsEndpoint.Map(app, tenantPort);
        app.MapPrometheusScrapingEndpoint();
        // The page is public; the API calls it makes carry the key typed into it.
        app.MapGet("/playground", () => Results.Content(Playground.Html, "text/html; charset=utf-8"));
        app.MapGet("/", () => Results.Redirect("/playground"));

        static async ValueTask<object?> Authenticate(EndpointFilterInvocationContext ctx, EndpointFilterDelegate next)
        {
            ctx.HttpContext.RequestServices.GetRequiredService<TenantAuth>().Authenticate(ctx.HttpContext);
            return await next(ctx);
        }
        var v1 = app.MapGroup("/v1").AddEndpointFilter(Authenticate);
        // vLLM serves these at the root; also under /v1 for clients whose base URL ends in /v1. Same API keys as /v1.
        foreach (var group in new[] { app.MapGroup("").AddEndpointFilter(Authenticate), v1 })
        {
            group.MapPost("/tokenize", (HttpContext ctx, TokenizeEndpoints e) => e.TokenizeAsync(ctx));
            group.MapPost("/detokenize", (HttpContext ctx, TokenizeEndpoints e) => e.DetokenizeAsync(ctx));
        }

        v1.MapGet("/models", async (HttpContext ctx, ModelCatalog catalog) =>
        {
            var tenant = TenantAuth.Current(ctx);
            await catalog.RefreshAsync(ctx.RequestAborted);
            var names = catalog.Combinations.Keys.Concat(catalog.Hosted).Distinct().Where(tenant.Allows).Order();
            await WriteJson(ctx, 200, w =>
            {
                w.WriteStartObject();
                w.WriteString("object", "list");
                w.WritePropertyName("data");
                w.WriteStartArray();
                foreach (var name in names) WriteModel(w, name, catalog);
                w.WriteEndArray();
                w.WriteEndObject();
            });
        });
        v1.MapGet("/models/{id}", async (HttpContext ctx, string id, ModelCatalog catalog) =>
        {
            var tenant = TenantAuth.Current(ctx);
            await catalog.RefreshAsync(ctx.RequestAborted);
            if (catalog.Resolve(id) is null || !tenant.Allows(id))
                throw ApiError.NotFound($"The model '{id}' does not exist or your API key may not use it.", "model", "model_not_found");
            await WriteJson(ctx, 200, w => WriteModel(w, id, catalog));
        });
        v1.MapPost("/completions", (HttpContext ctx, CompletionHandler h) => h.HandleAsync(ctx, ApiEndpoint.Completions));
        v1.MapPost("/chat/completions", (HttpContext ctx, CompletionHandler h) => h.HandleAsync(ctx, ApiEndpoint.ChatCompletions));

        // The caller's own running requests; another tenant's ids are never visible (404, as if unknown).
        // Every replica's requests (the cluster's registry), with this replica's own even if the cluster cannot answer.
        v1.MapGet("/requests", async (HttpContext ctx, RequestRegistry registry, ClusterRequests cluster) =>
        {
            var tenant = TenantAuth.Current(ctx);
            var local = registry.List(tenant.Name).Select(e => (e.Id, e.Model, Created: e.Created.ToUnixTimeSeconds(), e.Generations));
            var everywhere = (await cluster.ListAsync(tenant.Name, ctx.RequestAborted) ?? [])
                .Select(r => (r.Id, r.Model, Created: r.CreatedUnixSeconds, Generations: r.GenerationIds.Length));
            return Results.Json(new
            {
                @object = "list",
                data = local.Concat(everywhere).DistinctBy(e => e.Id).OrderBy(e => e.Created)
                    .Select(e => new { id = e.Id, model = e.Model, created = e.Created, generations = e.Generations }),
            });
        });
        // This replica's request: trip its token (as a disconnect does); another replica's: through the cluster.
        v1.MapDelete("/requests/{id}", async (HttpContext ctx, string id, RequestRegistry registry, ClusterRequests cluster) =>
        {
            var tenant = TenantAuth.Current(ctx);
            if (!registry.TryCancel(tenant.Name, id) && !await cluster.CancelAsync(tenant.Name, id, ctx.RequestAborted))
                throw ApiError.NotFound($"No running request '{id}' for your API key.", "id", "request_not_found");
            return Results.Json(new { id, @object = "request", cancelled = true });
        });
        app.MapFallback((HttpContext ctx) =>
            throw ApiError.NotFound($"Unknown endpoint {ctx.Request.Method} {ctx.Request.Path}. See docs/gateway.md.", null, "unknown_url"));
    }

    static void WriteModel(Utf8JsonWriter w, string name, ModelCatalog catalog)
    {
        w.WriteStartObject();
        w.WriteString("id", name);
        w.WriteString("object", "model");
        w.WriteNumber("created", 0);
        w.WriteString("owned_by", catalog.Combinations.ContainsKey(name) ? "proxyorleans-combination" : "proxyorleans");
        w.WriteEndObject();
    }

    static async Task Answer(HttpContext ctx, ApiError e)
    {
        ctx.RequestServices.GetRequiredService<GatewayMetrics>().Reject(e.RejectionReason);
        if (ctx.Response.HasStarted) return;
        ctx.Response.Clear();
        await e.WriteAsync(ctx.Response);
    }

    static async Task WriteJson(HttpContext ctx, int status, Action<Utf8JsonWriter> write)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(ctx.Response.Body, OpenAi.JsonOut.Options);
        write(w);
        await w.FlushAsync();
    }
}
