using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenAI;
using Orleans.Streams;
using ProxyOrleans.Client.Benchmarks;
using ProxyOrleans.Grains.Hosting;
using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.TestSupport;
using ProxyOrleans.Inference.Tokenization;
using ProxyOrleans.Gateway.Tenants;
using System.ClientModel.Primitives;

namespace ProxyOrleans.Gateway.Tests;

[CollectionDefinition(Name)]
public sealed class GatewayCollection : ICollectionFixture<GatewayFixture>
{
    public const string Name = "gateway";
}

/// <summary>
/// A real cluster on loopback — two silos over TCP: one hosts the base model, the other the expert and the
/// anti-expert — three tiny real models (seeded random weights, a real byte-level BPE tokenizer, ChatML for the
/// expert) and the real gateway on Kestrel as an Orleans client. The direct library path (ProxyDecoder) runs on
/// the same model directories for comparison.
/// The silos are generic hosts started here rather than an <see cref="InProcessCluster"/>: Orleans.TestingHost's
/// silos talk over an in-memory transport that only its own client reaches, while the gateway under test must join
/// as it does in production, an Orleans client of its own over TCP to the silos' gateway ports. Silo processes
/// (<see cref="HostProcess"/>) would do that too, but the tests read each silo's open sessions in process
/// (<see cref="ActiveSessions"/>), which a process would only show through its /metrics.
/// </summary>
public sealed class GatewayFixture : IAsyncLifetime
{
    public const string AliceKey = "sk-test-alice-0001", BobKey = "sk-test-bob-0002", CarolKey = "sk-test-carol-0003", DaveKey = "sk-test-dave-0004", ErinKey = "sk-test-erin-0005", FrankKey = "sk-test-frank-0006";

    public string BaseModel => "base-tiny";
    public string ExpertModel => "expert-tiny";
    public string AntiExpertModel => "anti-tiny";
    public string Combination => "proxy-tiny";
    /// <summary>The same trio with the silos' configured prompt defaults: <see cref="AnswerCue"/> and <see cref="ResponsePrefix"/>.</summary>
    public string CuedCombination => "proxy-tiny-cued";
    public const string AnswerCue = "Question: {prompt}\nAnswer:", ResponsePrefix = "Answer:";
    public CombinationSpec CombinationSpec => new(BaseModel, [new ExpertSpec(ExpertModel, AntiExpertModel, 1f)], 1f);
    public int ModelContext => 2048;
    /// <summary>The bundled demo models (models/demo), trained: base-large proxy-tuned by tuned-small − base-small.</summary>
    public string DemoCombination => "proxy-large";
    /// <summary>A generation this long runs for a while (the tiny models never stop early: checked at start): ~2 s on a
    /// quiet 2-core machine, long enough for a test to act on it while it runs.</summary>
    public int LongMaxTokens => 1900;
    public int MaxPromptChars => 4000;
    public long MaxBodyBytes => 32 * 1024;

    readonly List<IHost> silos = [];
    IHost? observer;
    RunningGateway? gateway;
    Inference.Decoding.ModelCatalog? directCatalog;
    ProxyDecoder? decoder;
    string? root;
    public Dictionary<string, string?> GatewaySettings { get; } = new();

    public HttpClient Http => gateway!.Http;
    public Uri BaseUri => gateway!.BaseUri;
    public IClusterClient ClusterClient => observer!.Services.GetRequiredService<IClusterClient>();

    public OpenAIClientOptions ClientOptions(int? retries = null)
    {
        var o = new OpenAIClientOptions { Endpoint = new Uri(BaseUri, "/v1"), NetworkTimeout = TimeSpan.FromMinutes(2) };
        if (retries is int r) o.RetryPolicy = new ClientRetryPolicy(r);
        return o;
    }

    public async Task InitializeAsync()
    {
        root = Directory.CreateTempSubdirectory("proxyorleans-gateway-tests-").FullName;
        var dirs = TinyModels.CreateTrio(root, ModelContext);

        int silo0 = LoopbackPorts.Next(), gw0 = LoopbackPorts.Next(), silo1 = LoopbackPorts.Next(), gw1 = LoopbackPorts.Next();
        var demo = Inference.Decoding.ModelCatalog.FindDemoModelsDirectory()
            ?? throw new InvalidOperationException("models/demo was not found above the test directory: the bundled demo models are part of the repository.");
        silos.Add(await StartSiloAsync("gw-silo-0", silo0, gw0, silo0, [(BaseModel, dirs.Base), ("base-large", Path.Combine(demo, "base-large"))]));
        silos.Add(await StartSiloAsync("gw-silo-1", silo1, gw1, silo0, [(ExpertModel, dirs.Expert), (AntiExpertModel, dirs.Anti),
            ("tuned-small", Path.Combine(demo, "tuned-small")), ("base-small", Path.Combine(demo, "base-small"))]));

        // Tenants: Alice from configuration, the others from a tenants file (both ways the gateway loads them).
        var tenantsFile = Path.Combine(root, "tenants.json");
        File.WriteAllText(tenantsFile, JsonSerializer.Serialize(new
        {
            tenants = new object[]
            {
                new { name = "bob", keySha256 = Tenant.HashKey(BobKey), models = new[] { Combination, BaseModel }, requestsPerMinute = 3, tokensPerMinute = 0, maxConcurrency = 10 },
                new { name = "carol", keySha256 = Tenant.HashKey(CarolKey), models = new[] { BaseModel }, requestsPerMinute = 0, tokensPerMinute = 0, maxConcurrency = 0 },
                new { name = "dave", keySha256 = Tenant.HashKey(DaveKey), models = new[] { "*" }, requestsPerMinute = 0, tokensPerMinute = 40, maxConcurrency = 2 },
                new { name = "erin", keySha256 = Tenant.HashKey(ErinKey), models = new[] { "*" }, requestsPerMinute = 3, tokensPerMinute = 0, maxConcurrency = 0 },
                new { name = "frank", keySha256 = Tenant.HashKey(FrankKey), models = new[] { Combination }, requestsPerMinute = 0, tokensPerMinute = 0, maxConcurrency = 0 },
            },
        }));
        GatewaySettings["ProxyOrleans:Clustering"] = "localhost";
        GatewaySettings["ProxyOrleans:GatewayPorts:0"] = gw0.ToString();
        GatewaySettings["ProxyOrleans:GatewayPorts:1"] = gw1.ToString();
        GatewaySettings["ProxyOrleans:ClusterId"] = ClusterId;
        GatewaySettings["ProxyOrleans:ServiceId"] = ClusterId;
        GatewaySettings["ProxyOrleans:TenantsFile"] = tenantsFile;
        GatewaySettings["ProxyOrleans:Tenants:0:Name"] = "alice";
        GatewaySettings["ProxyOrleans:Tenants:0:KeySha256"] = Tenant.HashKey(AliceKey);
        GatewaySettings["ProxyOrleans:Tenants:0:Models:0"] = "*";
        GatewaySettings["ProxyOrleans:Tenants:0:MaxConcurrency"] = "32";
        GatewaySettings["ProxyOrleans:Gateway:MaxPromptChars"] = MaxPromptChars.ToString();
        GatewaySettings["ProxyOrleans:Gateway:MaxRequestBodyBytes"] = MaxBodyBytes.ToString();
        GatewaySettings["ProxyOrleans:Gateway:MaxTokensLimit"] = "2000";
        GatewaySettings["ProxyOrleans:Gateway:JsonLogs"] = "false";
        gateway = await RunningGateway.StartAsync(GatewaySettings);

        observer = Host.CreateDefaultBuilder()
            .ConfigureLogging(l => l.SetMinimumLevel(LogLevel.Warning))
            .UseOrleansClient(c => c
                .UseStaticClustering(new IPEndPoint(IPAddress.Loopback, gw0), new IPEndPoint(IPAddress.Loopback, gw1))
                .Configure<Orleans.Configuration.ClusterOptions>(o => { o.ClusterId = ClusterId; o.ServiceId = ClusterId; })
                .AddMemoryStreams(StreamNames.Provider))
            .Build();
        await observer.StartAsync();

        directCatalog = new Inference.Decoding.ModelCatalog(
            [new ModelSource(BaseModel, dirs.Base), new ModelSource(ExpertModel, dirs.Expert), new ModelSource(AntiExpertModel, dirs.Anti)],
            (dir, name) => LlamaInferenceModel.Load(dir, new InferenceOptions { Name = name }),
            dir => TokenizerLoader.Load(dir), includeDemoModels: false);
        decoder = new ProxyDecoder(directCatalog);

        // Precondition of the cancellation tests: these models do not stop on their own before LongMaxTokens.
        var longRun = Direct(CombinationSpec, "Tell a long story", null, LongMaxTokens);
        if (longRun.FinishReason != "length")
            throw new InvalidOperationException($"Tiny models stopped after {longRun.CompletionTokens} tokens; pick other seeds.");
    }

    const string ClusterId = "gateway-tests";

    async Task<IHost> StartSiloAsync(string name, int siloPort, int gatewayPort, int primaryPort, (string Name, string Path)[] models)
    {
        var settings = new Dictionary<string, string?>
        {
            ["ProxyOrleans:Combinations:proxy-tiny:Base"] = BaseModel,
            ["ProxyOrleans:Combinations:proxy-tiny:Alpha"] = "1",
            ["ProxyOrleans:Combinations:proxy-tiny:Experts:0:Expert"] = ExpertModel,
            ["ProxyOrleans:Combinations:proxy-tiny:Experts:0:AntiExpert"] = AntiExpertModel,
            ["ProxyOrleans:Combinations:proxy-tiny-cued:Base"] = BaseModel,
            ["ProxyOrleans:Combinations:proxy-tiny-cued:Experts:0:Expert"] = ExpertModel,
            ["ProxyOrleans:Combinations:proxy-tiny-cued:Experts:0:AntiExpert"] = AntiExpertModel,
            ["ProxyOrleans:Combinations:proxy-tiny-cued:AnswerCue"] = AnswerCue,
            ["ProxyOrleans:Combinations:proxy-tiny-cued:ExpertResponsePrefix"] = ResponsePrefix,
            ["ProxyOrleans:Combinations:proxy-large:Base"] = "base-large",
            ["ProxyOrleans:Combinations:proxy-large:Experts:0:Expert"] = "tuned-small",
            ["ProxyOrleans:Combinations:proxy-large:Experts:0:AntiExpert"] = "base-small",
            ["ProxyOrleans:Threads"] = "1",
        };
        for (var i = 0; i < models.Length; i++)
        {
            settings[$"ProxyOrleans:Models:{i}:Name"] = models[i].Name;
            settings[$"ProxyOrleans:Models:{i}:Path"] = models[i].Path;
        }
        var config = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var host = Host.CreateDefaultBuilder()
            .ConfigureLogging(l => l.SetMinimumLevel(LogLevel.Warning))
            .UseOrleans(silo => silo
                .UseLocalhostClustering(siloPort, gatewayPort, new IPEndPoint(IPAddress.Loopback, primaryPort), ClusterId, ClusterId)
                .Configure<Orleans.Configuration.SiloOptions>(o => o.SiloName = name)
                .UseFastFailureDetection()
                .AddProxyOrleans(config))
            .Build();
        await host.StartAsync();
        return host;
    }

    public static Task<RunningGateway> StartGatewayAsync(GatewayFixture fx, IDictionary<string, string?> extra, params string[] extraUrls)
    {
        var settings = new Dictionary<string, string?>(fx.GatewaySettings);
        foreach (var (k, v) in extra) settings[k] = v;
        return RunningGateway.StartAsync(settings, extraUrls);
    }

    /// <summary>Model sessions (KV caches) open now on silo <paramref name="silo"/> (0: base; 1: expert and anti-expert).</summary>
    public int ActiveSessions(int silo) =>
        silos[silo].Services.GetRequiredService<ProxyOrleans.Grains.Models.HostedModels>().Workers.Sum(w => w.ActiveSessions);

    public sealed record DirectResult(string Text, string FinishReason, int PromptTokens, int CompletionTokens);

    /// <summary>The same generation through the single-process library path (no Orleans, no HTTP).</summary>
    public DirectResult Direct(CombinationSpec spec, string? prompt, ChatMessageSpec[]? messages, int maxTokens,
        float temperature = 0f, ulong? seed = null, IReadOnlyList<string>? stop = null, Func<SamplingOptions, SamplingOptions>? sampling = null)
    {
        var combination = new ProxyCombination(spec.Base, spec.Experts.Select(e => new ExpertPair(e.Expert, e.AntiExpert, e.Weight)).ToList(), spec.Alpha);
        var p = (prompt is not null ? ProxyPrompt.FromText(prompt) : ProxyPrompt.FromMessages(messages!.Select(m => new ChatMessage(m.Role, m.Content)).ToList()))
            with { AnswerCue = spec.AnswerCue, ExpertResponsePrefix = spec.ExpertResponsePrefix };
        var options = new SamplingOptions { Temperature = temperature, Seed = seed, MaxNewTokens = maxTokens, Stop = stop ?? [] };
        if (sampling is not null) options = sampling(options);
        GenerationResult r;
        lock (decoder!) r = decoder.Generate(combination, p, options);
        return new DirectResult(r.Text, r.FinishReason == FinishReason.Length ? "length" : "stop", r.PromptTokens, r.CompletionTokens);
    }

    /// <summary>The single-process generation with decoding options (log-probabilities), for comparison field by field.</summary>
    public GenerationResult DirectGeneration(CombinationSpec spec, string? prompt, ChatMessageSpec[]? messages, int maxTokens, DecodeOptions decode)
    {
        var combination = new ProxyCombination(spec.Base, spec.Experts.Select(e => new ExpertPair(e.Expert, e.AntiExpert, e.Weight)).ToList(), spec.Alpha);
        var p = (prompt is not null ? ProxyPrompt.FromText(prompt) : ProxyPrompt.FromMessages(messages!.Select(m => new ChatMessage(m.Role, m.Content)).ToList()))
            with { AnswerCue = spec.AnswerCue, ExpertResponsePrefix = spec.ExpertResponsePrefix };
        lock (decoder!) return decoder.Generate(combination, p, new SamplingOptions { Temperature = 0, MaxNewTokens = maxTokens }, decode);
    }

    /// <summary>The single-process generation of a prompt given as a <see cref="ProxyPrompt"/> (token ids, say), greedy.</summary>
    public GenerationResult DirectGeneration(CombinationSpec spec, ProxyPrompt prompt, int maxTokens, DecodeOptions? decode = null)
    {
        var combination = new ProxyCombination(spec.Base, spec.Experts.Select(e => new ExpertPair(e.Expert, e.AntiExpert, e.Weight)).ToList(), spec.Alpha);
        var p = prompt with { AnswerCue = spec.AnswerCue, ExpertResponsePrefix = spec.ExpertResponsePrefix };
        lock (decoder!) return decoder.Generate(combination, p, new SamplingOptions { Temperature = 0, MaxNewTokens = maxTokens }, decode);
    }

    /// <summary>Subscribes to a tenant's generation events (Orleans stream published by the coordinators).</summary>
    public async Task<EventWatcher> WatchGenerationsAsync(string tenant)
    {
        var watcher = new EventWatcher();
        var stream = ClusterClient.GetStreamProvider(StreamNames.Provider)
            .GetStream<GenerationEvent>(StreamId.Create(StreamNames.GenerationEvents, tenant));
        await stream.SubscribeAsync((e, _) => { watcher.Add(e); return Task.CompletedTask; });
        return watcher;
    }

    public sealed class EventWatcher
    {
        readonly List<GenerationEvent> events = [];
        readonly SemaphoreSlim changed = new(0);
        public void Add(GenerationEvent e) { lock (events) events.Add(e); changed.Release(); }

        public async Task<GenerationEvent> WaitForAsync(Func<GenerationEvent, bool> match, TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (true)
            {
                lock (events) if (events.FirstOrDefault(match) is { } found) return found;
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero || !await changed.WaitAsync(left))
                    lock (events) throw new TimeoutException($"No matching generation event within {timeout}; saw: " +
                        string.Join("; ", events.Select(e => $"{e.RequestId} {e.Kind} {e.Finish} step {e.Step}")));
            }
        }
    }

    public async Task DisposeAsync()
    {
        if (gateway is not null) await gateway.DisposeAsync();
        if (observer is not null) { await observer.StopAsync(); observer.Dispose(); }
        foreach (var s in Enumerable.Reverse(silos)) { await s.StopAsync(); s.Dispose(); }
        directCatalog?.Dispose();
        if (root is not null) try { Directory.Delete(root, true); } catch (IOException) { }
    }
}
