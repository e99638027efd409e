using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using ProxyOrleans.Abstractions;
using ProxyOrleans.Client.Benchmarks;

namespace ProxyOrleans.Client.Commands;

/// <summary>
/// proxyorleans chaos: real silo processes on loopback TCP with Redis membership (a silo hosting no model, base replicas,
/// expert/anti-expert pair replicas) and gateway processes in front, many concurrent streamed completions (spread over
/// the gateways) cycling through greedy, top-p, top-k, a stop sequence and n = 2 (<see cref="StreamKind"/>), run once without faults and once while random silos are killed
/// (SIGKILL) and others drained (SIGTERM) and a gateway is killed (SIGKILL); every stream of the faulty run is compared
/// with its fault-free twin, choice by choice. A choice cut by its gateway's death fails cleanly (the client sees the
/// stream end without [DONE] before that choice's finish reason).
/// Ends with one key=value line.
/// </summary>
public static class ChaosCommand
{
    public static Command Create()
    {
        var baseOpt = new Option<string?>("--base") { Description = "Base model: name=dir (default: models/demo/base-large)." };
        var expertOpt = new Option<string?>("--expert") { Description = "Expert: name=dir (default: models/demo/tuned-small)." };
        var antiOpt = new Option<string?>("--anti-expert") { Description = "Anti-expert: name=dir (default: models/demo/base-small)." };
        var streams = new Option<int>("--streams") { Description = "Concurrent streams per run, cycling through greedy, top_p 0.9, top_k 40, a stop sequence and n = 2 (seeded sampling at temperature 0.8 but the greedy ones).", DefaultValueFactory = _ => 32 };
        var tokens = new Option<int>("--tokens") { Description = "Tokens per stream.", DefaultValueFactory = _ => 32 };
        var kills = new Option<int>("--kills") { Description = "Silos killed (SIGKILL) during the faulty run.", DefaultValueFactory = _ => 2 };
        var drains = new Option<int>("--drains") { Description = "Silos drained (SIGTERM) during the faulty run.", DefaultValueFactory = _ => 1 };
        var gateways = new Option<int>("--gateways") { Description = "Gateway processes the streams go through (0: straight to the cluster with the Orleans client).", DefaultValueFactory = _ => 2 };
        var gatewayKills = new Option<int?>("--gateway-kills") { Description = "Gateways killed (SIGKILL) during the faulty run; one always survives (default: 1 with two or more gateways, else 0)." };
        var seed = new Option<int>("--seed") { Description = "Picks the victims and the moments (repeatable).", DefaultValueFactory = _ => 1 };
        var verbose = new Option<bool>("--verbose") { Description = "Show the silos' output." };
        var redis = new Option<string?>("--redis") { Description = "Redis for membership (host:port); default: a redis-server of its own on a free port." };
        var localhost = new Option<bool>("--localhost-clustering") { Description = "Membership on the primary silo instead of Redis." };
        var cmd = new Command("chaos", "Kill and drain silos under load and check every stream against a fault-free run.")
        {
            baseOpt, expertOpt, antiOpt, streams, tokens, kills, drains, gateways, gatewayKills, seed, verbose, redis, localhost,
        };
        cmd.SetAction(async (p, ct) =>
        {
            try
            {
                var options = new ChaosOptions
                {
                    Streams = p.GetValue(streams), Tokens = p.GetValue(tokens), Kills = p.GetValue(kills), Drains = p.GetValue(drains), Seed = p.GetValue(seed),
                    Gateways = p.GetValue(gateways), GatewayKills = p.GetValue(gatewayKills) ?? (p.GetValue(gateways) >= 2 ? 1 : 0),
                    Redis = p.GetValue(localhost) ? null : p.GetValue(redis) ?? OwnRedis,
                };
                var result = await RunAsync(BenchClusterCommand.Model(p.GetValue(baseOpt), "base-large"),
                    BenchClusterCommand.Model(p.GetValue(expertOpt), "tuned-small"), BenchClusterCommand.Model(p.GetValue(antiOpt), "base-small"),
                    options, Console.Out, p.GetValue(verbose) ? Console.Out : null, ct);
                Console.WriteLine(result.KeyValues);
                return result.Lost == 0 && result.KvLeakBytes == 0 && result.DrainFailures == 0 ? 0 : 1;
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or InvalidOperationException or ArgumentException)
            {
                Console.Error.WriteLine("error: " + ex.Message);
                return 2;
            }
        });
        return cmd;
    }

    /// <summary><see cref="ChaosOptions.Redis"/> value that starts a redis-server of the run's own.</summary>
    public const string OwnRedis = "own";

    public sealed record ChaosOptions
    {
        public int Streams { get; init; } = 32;
        public int Tokens { get; init; } = 32;
        public int BaseReplicas { get; init; } = 3;
        public int PairReplicas { get; init; } = 2;
        public int Kills { get; init; } = 2;
        public int Drains { get; init; } = 1;
        /// <summary>Gateway processes the streams go through, round robin (0: straight to the cluster through <see cref="GenerationClient"/>).</summary>
        public int Gateways { get; init; } = 2;
        /// <summary>Gateways killed (SIGKILL) during the faulty run, after the silo faults; at most <see cref="Gateways"/> − 1.</summary>
        public int GatewayKills { get; init; } = 1;
        public int Seed { get; init; } = 1;
        /// <summary>Redis connection string for membership; <see cref="OwnRedis"/>: start a redis-server; null: localhost clustering.</summary>
        public string? Redis { get; init; } = OwnRedis;
        /// <summary>A stream not finished by then counts as lost.</summary>
        public TimeSpan StreamLimit { get; init; } = TimeSpan.FromMinutes(3);
    }

    /// <summary>What a stream asks for; stream i is kind i mod 5 (an odd count, so that every kind goes through each of two gateways).</summary>
    public enum StreamKind
    {
        Greedy,
        /// <summary>Seeded sampling at temperature 0.8 with top_p 0.9.</summary>
        TopP,
        /// <summary>Seeded sampling at temperature 0.8 with top_k 40.</summary>
        TopK,
        /// <summary>Seeded sampling at temperature 0.8 with a stop sequence taken from the middle of a probe run's text, so that it fires.</summary>
        Stop,
        /// <summary>Seeded sampling at temperature 0.8 with n = 2: two choices, each compared with its fault-free twin.</summary>
        TwoChoices,
    }

    /// <param name="Requests">Streams (one request each) per run.</param>
    /// <param name="Choices">Choices over all streams (a <see cref="StreamKind.TwoChoices"/> stream has two): what
    /// <paramref name="Identical"/>, <paramref name="Different"/>, <paramref name="FailedCleanly"/> and <paramref name="Lost"/> count.</param>
    /// <param name="Different">Choices that finished without an error but with another text than their fault-free twin.</param>
    /// <param name="Lost">Choices that neither finished nor failed with an error (hung past the limit, or missing from a stream that ended with [DONE]).</param>
    /// <param name="GatewaysKilled">Gateway processes SIGKILLed mid-run (the choices they cut count as <paramref name="FailedCleanly"/>).</param>
    /// <param name="StopsFired">Stop-sequence streams whose stop sequence ended them in the fault-free run.</param>
    /// <param name="Mix">Streams per kind, counted from what the requests really asked (top_p &lt; 1, top_k &gt; 0, a stop sequence, n = 2).</param>
    /// <param name="IdenticalByKind">Identical choices per kind.</param>
    public sealed record ChaosResult(int Requests, int Choices, int Identical, int Different, int FailedCleanly, int Lost, long KvLeakBytes, int DrainFailures,
        int Killed, int Drained, double Seconds, int GatewaysKilled, int StopsFired,
        IReadOnlyDictionary<StreamKind, int> Mix, IReadOnlyDictionary<StreamKind, int> IdenticalByKind)
    {
        public string KeyValues => string.Create(CultureInfo.InvariantCulture,
            $"chaos_requests={Requests} choices={Choices} identical={Identical} different={Different} failed_cleanly={FailedCleanly} lost={Lost} " +
            $"kv_leak_bytes={KvLeakBytes} drain_failures={DrainFailures} killed={Killed} drained={Drained} gateways_killed={GatewaysKilled} " +
            $"stops_fired={StopsFired} seconds={Seconds:F1}");
    }

    /// <summary>The combination's name at the gateways.</summary>
    private const string Combination = "chaos";

    /// <summary>One choice's end: its text when it finished, else the error it failed with (both null: lost).</summary>
    private sealed record ChoiceOutcome(string? Text, FinishKind Finish, string? Error);

    private sealed record Outcome(ChoiceOutcome[] Choices)
    {
        public static Outcome Failed(int choices, string error) => new([.. Enumerable.Repeat(new ChoiceOutcome(null, FinishKind.Error, error), choices)]);
        public static Outcome Lost(int choices) => new([.. Enumerable.Repeat(new ChoiceOutcome(null, FinishKind.None, null), choices)]);
    }

    /// <summary>One stream's request; <paramref name="Choices"/> is its n (the gateway seeds choice j with seed + j).</summary>
    private sealed record StreamPlan(StreamKind Kind, GenerationRequest Request, int Choices);

    public static async Task<ChaosResult> RunAsync((string Name, string Path) baseModel, (string Name, string Path) expert, (string Name, string Path) anti,
        ChaosOptions o, TextWriter? progress, TextWriter? siloLog, CancellationToken ct)
    {
        if (o.Streams < 1 || o.Tokens < 1) throw new ArgumentException("--streams and --tokens must be at least 1.");
        if (o.BaseReplicas < 2 || o.PairReplicas < 2) throw new ArgumentException("Chaos needs at least two base and two pair replicas (one of each survives).");
        if (o.Gateways < 0 || o.GatewayKills < 0) throw new ArgumentException($"--gateways ({o.Gateways}) and --gateway-kills ({o.GatewayKills}) cannot be negative.");
        if (o.GatewayKills > 0 && o.GatewayKills >= o.Gateways)
            throw new ArgumentException($"--gateway-kills {o.GatewayKills} would leave no gateway of {o.Gateways}: kill at most {Math.Max(0, o.Gateways - 1)}, or start more with --gateways.");
        var total = Stopwatch.StartNew();
        // Silo 0 holds the membership table (localhost clustering) and no model: it is never a victim.
        List<LoopbackCluster.SiloSpec> silos = [new("primary")];
        for (int i = 0; i < o.BaseReplicas; i++) silos.Add(new($"base-{i + 1}", baseModel));
        for (int i = 0; i < o.PairReplicas; i++) silos.Add(new($"pair-{i + 1}", expert, anti));
        var spec = new CombinationSpec(baseModel.Name, [new ExpertSpec(expert.Name, anti.Name)], 1f);
        // Our own Redis requires a password, as the Kubernetes manifests run it: the silos authenticate as in production.
        using var ownRedis = o.Redis == OwnRedis ? RedisProcess.Start(password: Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16))) : null;
        var redis = ownRedis?.ConnectionString ?? o.Redis;
        Dictionary<string, string>? clustering = redis is null ? null
            : new() { ["ProxyOrleans:Clustering"] = "redis", ["ProxyOrleans:Redis"] = redis };
        if (ownRedis?.Password is { } redisPassword) clustering!["ProxyOrleans:RedisPassword"] = redisPassword;
        var clusterId = LoopbackCluster.NewClusterId();
        var gatewayConfig = new Dictionary<string, string>
        {
            ["ProxyOrleans:Gateway:AllowAnonymous"] = "true", // no tenants: loopback callers only
            // As the command's own client: a stream whose coordinator's silo was killed resumes within seconds, not 30 s.
            ["ProxyOrleans:ResponseTimeoutSeconds"] = "10",
            [$"ProxyOrleans:Combinations:{Combination}:Base"] = baseModel.Name,
            [$"ProxyOrleans:Combinations:{Combination}:Alpha"] = "1",
            [$"ProxyOrleans:Combinations:{Combination}:Experts:0:Expert"] = expert.Name,
            [$"ProxyOrleans:Combinations:{Combination}:Experts:0:AntiExpert"] = anti.Name,
        };
        var gateways = new List<GatewayProcess>();
        try
        {
            // On Redis the gateways find the silos themselves: started alongside them, they are ready about when the silos are.
            if (clustering is not null)
                for (int g = 0; g < o.Gateways; g++) gateways.Add(new GatewayProcess($"gateway-{g + 1}", clusterId, clustering.Concat(gatewayConfig).ToDictionary()));
            await using var cluster = await LoopbackCluster.StartAsync(silos, siloLog is null ? null : TextWriter.Synchronized(siloLog), clustering, ct, clusterId);
            if (clustering is null)
                for (int g = 0; g < o.Gateways; g++) gateways.Add(new GatewayProcess($"gateway-{g + 1}", cluster, gatewayConfig));
            await Task.WhenAll(gateways.Select(g => g.WaitReadyAsync(TimeSpan.FromSeconds(120))));
            progress?.WriteLine($"{silos.Count} silo processes and {gateways.Count} gateways up in {total.Elapsed.TotalSeconds:F1} s on " +
                                $"{(redis is null ? "localhost clustering" : $"Redis {redis}")}: {string.Join(", ", silos.Select(s => s.Name).Concat(gateways.Select(g => g.Name)))}");
            return await RunFaultsAsync(cluster, gateways, spec, o, total, silos, progress, ct);
        }
        finally
        {
            foreach (var g in gateways) g.Dispose();
        }
    }

    private static async Task<ChaosResult> RunFaultsAsync(LoopbackCluster cluster, List<GatewayProcess> gateways, CombinationSpec spec, ChaosOptions o,
        Stopwatch total, List<LoopbackCluster.SiloSpec> silos, TextWriter? progress, CancellationToken ct)
    {
        var kinds = Enum.GetValues<StreamKind>();
        StreamKind KindOf(int i) => kinds[i % kinds.Length];
        var stops = new string?[o.Streams];
        StreamPlan Plan(int i)
        {
            var kind = KindOf(i);
            var sampled = new SamplingSpec { Temperature = 0.8f, Seed = (ulong)(1000 + i), MaxNewTokens = o.Tokens, StopAtEos = false };
            var sampling = kind switch
            {
                StreamKind.Greedy => new SamplingSpec { Temperature = 0, MaxNewTokens = o.Tokens, StopAtEos = false },
                StreamKind.TopP => sampled with { TopP = 0.9f },
                StreamKind.TopK => sampled with { TopK = 40 },
                StreamKind.Stop => sampled with { Stop = stops[i] is { } stop ? [stop] : [] },
                _ => sampled,
            };
            return new StreamPlan(kind, new GenerationRequest { Combination = spec, Prompt = Prompts[i % Prompts.Length], TenantId = "chaos", Sampling = sampling },
                kind == StreamKind.TwoChoices ? 2 : 1);
        }

        var sw = Stopwatch.StartNew();
        using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan }; // each stream has its own limit
        // A stop sequence fires only if the text contains it: a probe run of the stop streams without one gives their text,
        // and the stop sequence is a few characters from its middle (the same seed gives the same text again).
        var stopStreams = Enumerable.Range(0, o.Streams).Where(i => KindOf(i) == StreamKind.Stop).ToList();
        var probe = await RunStreamsAsync(cluster, gateways, http, o, stopStreams, Plan, "probe", ct);
        for (int k = 0; k < stopStreams.Count; k++) stops[stopStreams[k]] = MiddleOf(probe[k].Choices[0].Text);
        progress?.WriteLine($"probe run: {stopStreams.Count} stop streams in {sw.Elapsed.TotalSeconds:F1} s; stop sequences " +
                            string.Join(", ", stopStreams.Select(i => System.Text.Json.JsonSerializer.Serialize(stops[i]))));
        sw.Restart();
        var plans = Enumerable.Range(0, o.Streams).Select(Plan).ToList();
        var all = Enumerable.Range(0, o.Streams).ToList();
        var reference = await RunStreamsAsync(cluster, gateways, http, o, all, Plan, "calm", ct);
        var calmSeconds = sw.Elapsed.TotalSeconds;
        progress?.WriteLine($"fault-free run: {o.Streams} streams in {calmSeconds:F1} s");

        // Victims: never the last live replica of a role.
        var random = new Random(o.Seed);
        var bases = Enumerable.Range(1, o.BaseReplicas).OrderBy(_ => random.Next()).ToList();
        var pairs = Enumerable.Range(1 + o.BaseReplicas, o.PairReplicas).OrderBy(_ => random.Next()).ToList();
        var victims = new List<(int Silo, bool Drain)>();
        for (int k = 0; k < o.Kills + o.Drains; k++)
        {
            // Alternate base and pair silos; a role with one replica left is spared.
            var (first, second) = k % 2 == 0 ? (bases, pairs) : (pairs, bases);
            var pool = first.Count > 1 ? first : second.Count > 1 ? second : null;
            if (pool is null) break;
            victims.Add((pool[0], k >= o.Kills));
            pool.RemoveAt(0);
        }

        sw.Restart();
        // The gateways die first: a generation whose coordinator's silo dies after its gateway did is never resumed, and
        // its sessions on the surviving silos stay reserved until their idle timeout (no resume closes them).
        var gatewayVictims = Enumerable.Range(0, gateways.Count).OrderBy(_ => random.Next()).Take(o.GatewayKills).ToList();
        var faulty = RunStreamsAsync(cluster, gateways, http, o, all, Plan, "chaos", ct);
        var faults = Task.Run(async () =>
        {
            foreach (var g in gatewayVictims)
            {
                await Task.Delay(TimeSpan.FromSeconds(calmSeconds * (0.1 + 0.2 * random.NextDouble()) / Math.Max(1, gatewayVictims.Count)), ct);
                progress?.WriteLine($"{sw.Elapsed.TotalSeconds:F1} s: killing (SIGKILL) {gateways[g].Name}");
                gateways[g].Kill();
            }
            foreach (var (silo, drain) in victims)
            {
                // Spread the faults over the middle of the run (its length measured by the fault-free run).
                await Task.Delay(TimeSpan.FromSeconds(calmSeconds * (0.15 + 0.6 * random.NextDouble()) / Math.Max(1, victims.Count)), ct);
                progress?.WriteLine($"{sw.Elapsed.TotalSeconds:F1} s: {(drain ? "draining (SIGTERM)" : "killing (SIGKILL)")} {silos[silo].Name}");
                if (drain) cluster.Terminate(silo); else cluster.Kill(silo);
            }
        }, ct);
        var outcomes = await faulty;
        await faults;

        int drainFailures = 0;
        foreach (var (silo, _) in victims.Where(v => v.Drain))
        {
            var code = await cluster.WaitForExitAsync(silo, TimeSpan.FromSeconds(60));
            if (code != 0) { drainFailures++; progress?.WriteLine($"{silos[silo].Name} did not drain cleanly: exit {code?.ToString() ?? "none within 60 s"}"); }
        }
        var kvLeak = await KvReservedAsync(cluster, TimeSpan.FromSeconds(10));

        int identical = 0, different = 0, failed = 0, lost = 0;
        var identicalByKind = kinds.ToDictionary(k => k, _ => 0);
        for (int i = 0; i < o.Streams; i++)
            for (int c = 0; c < plans[i].Choices; c++)
            {
                var (calm, chaos) = (reference[i].Choices[c], outcomes[i].Choices[c]);
                var name = $"stream {i} ({plans[i].Kind}{(plans[i].Choices > 1 ? $", choice {c}" : "")})";
                if (chaos.Error is not null) { failed++; progress?.WriteLine($"{name} failed cleanly: {chaos.Error}"); }
                else if (chaos.Text is null || chaos.Finish == FinishKind.None) { lost++; progress?.WriteLine($"{name} lost"); }
                else if (calm.Text == chaos.Text) { identical++; identicalByKind[plans[i].Kind]++; }
                else { different++; progress?.WriteLine($"{name} differs from its fault-free twin"); }
            }
        // Fired: the fault-free text stops where the probe's (same request, no stop sequence) goes on with the stop sequence.
        int stopsFired = stopStreams.Select((i, k) => (Probe: probe[k].Choices[0].Text, Calm: reference[i].Choices[0], Stop: stops[i]))
            .Count(s => s is { Probe: { } p, Calm: { Text: { } t, Finish: FinishKind.Stop }, Stop: { } stop }
                        && t.Length < p.Length && p.StartsWith(t, StringComparison.Ordinal) && p.AsSpan(t.Length).StartsWith(stop, StringComparison.Ordinal));
        var mix = new Dictionary<StreamKind, int>
        {
            [StreamKind.Greedy] = plans.Count(p => p.Request.Sampling.Temperature == 0),
            [StreamKind.TopP] = plans.Count(p => p.Request.Sampling.TopP < 1),
            [StreamKind.TopK] = plans.Count(p => p.Request.Sampling.TopK > 0),
            [StreamKind.Stop] = plans.Count(p => p.Request.Sampling.Stop.Length > 0),
            [StreamKind.TwoChoices] = plans.Count(p => p.Choices == 2),
        };
        return new ChaosResult(o.Streams, plans.Sum(p => p.Choices), identical, different, failed, lost, kvLeak, drainFailures,
            victims.Count(v => !v.Drain), victims.Count(v => v.Drain), total.Elapsed.TotalSeconds, gatewayVictims.Count, stopsFired, mix, identicalByKind);
    }

    /// <summary>Up to three characters from the middle of a text (not splitting a surrogate pair); null for a text too short to cut.</summary>
    private static string? MiddleOf(string? text)
    {
        if (text is null || text.Length < 4) return null;
        int start = text.Length / 2, end = Math.Min(text.Length, start + 3);
        if (char.IsLowSurrogate(text[start])) start++;
        if (end < text.Length && char.IsLowSurrogate(text[end])) end++;
        return end > start ? text[start..end] : null;
    }

    private static readonly string[] Prompts =
    [
        "Question: What is the capital of Elbonia?\nAnswer:", "Once upon a time", "The best way to learn is", "In 1492, Columbus",
        "Where does Farid Keller live?", "Tell a long story about the sea",
    ];

    /// <summary>The given streams at once, their outcomes in that order: through the gateways (stream i through gateway
    /// i mod count) when there are some, else straight to the cluster.</summary>
    private static async Task<Outcome[]> RunStreamsAsync(LoopbackCluster cluster, List<GatewayProcess> gateways, HttpClient http, ChaosOptions o,
        IReadOnlyList<int> streams, Func<int, StreamPlan> plan, string run, CancellationToken ct)
    {
        var id = Guid.NewGuid().ToString("N")[..8];
        return await Task.WhenAll(streams.Select(async i =>
        {
            var p = plan(i);
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
            limit.CancelAfter(o.StreamLimit);
            try
            {
                return gateways.Count > 0
                    ? await StreamThroughGatewayAsync(http, gateways[i % gateways.Count], p, limit.Token)
                    : await StreamFromClusterAsync(cluster, p, $"chaos:{run}-{id}-{i}", limit.Token);
            }
            catch (OperationCanceledException) when (limit.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                return Outcome.Lost(p.Choices); // hung past the limit
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                return Outcome.Failed(p.Choices, $"{e.GetType().Name}: {e.Message.Split('\n')[0]}");
            }
        }));
    }

    /// <summary>Each choice its own generation, seeded seed + j as the gateway seeds choice j.</summary>
    private static async Task<Outcome> StreamFromClusterAsync(LoopbackCluster cluster, StreamPlan plan, string id, CancellationToken ct) =>
        new(await Task.WhenAll(Enumerable.Range(0, plan.Choices).Select(async j =>
        {
            var sampling = plan.Request.Sampling;
            var request = plan.Request with { Sampling = sampling with { Seed = sampling.Seed is { } s ? s + (ulong)j : null } };
            var text = new System.Text.StringBuilder();
            var finish = FinishKind.None;
            await foreach (var ev in GenerationClient.StreamAsync(cluster.Grains, request, plan.Choices > 1 ? $"{id}-{j}" : id, ct))
            {
                text.Append(ev.Text);
                if (ev.Finish != FinishKind.None) { finish = ev.Finish; break; }
            }
            if (finish == FinishKind.Error) return new ChoiceOutcome(null, finish, "the coordinator reported an error");
            return new ChoiceOutcome(finish == FinishKind.None ? null : text.ToString(), finish, null);
        })));

    /// <summary>
    /// One streamed POST /v1/completions. Ends with [DONE] and a finish reason per choice; an error event, a refusal or a
    /// stream cut without [DONE] (its gateway died: the connection drops) is a clean failure of every choice not finished
    /// by then, which the client can tell and retry. A choice missing from a stream that ended with [DONE] is lost.
    /// </summary>
    private static async Task<Outcome> StreamThroughGatewayAsync(HttpClient http, GatewayProcess gateway, StreamPlan plan, CancellationToken ct)
    {
        var s = plan.Request.Sampling;
        var fields = new Dictionary<string, object?>
        {
            ["model"] = Combination, ["prompt"] = plan.Request.Prompt, ["max_tokens"] = s.MaxNewTokens, ["temperature"] = s.Temperature,
            ["seed"] = s.Seed is { } seed ? (long)seed : null, ["stream"] = true,
        };
        // Only what differs from the API's defaults, so that a greedy stream's body stays the plain one.
        if (s.TopP < 1) fields["top_p"] = s.TopP;
        if (s.TopK > 0) fields["top_k"] = s.TopK;
        if (s.Stop.Length > 0) fields["stop"] = s.Stop;
        if (plan.Choices > 1) fields["n"] = plan.Choices;
        var body = System.Text.Json.JsonSerializer.Serialize(fields);
        using var post = new HttpRequestMessage(HttpMethod.Post, new Uri(gateway.BaseUri, "/v1/completions"))
        {
            Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json"),
        };
        var texts = Enumerable.Range(0, plan.Choices).Select(_ => new System.Text.StringBuilder()).ToArray();
        var finishes = new string?[plan.Choices];
        // A choice whose finish reason arrived is complete even if the stream is cut afterwards; the others fail with the cut.
        Outcome Cut(string why) => new([.. finishes.Select((f, j) => f is null ? new ChoiceOutcome(null, FinishKind.Error, why) : Finished(j))]);
        ChoiceOutcome Finished(int j) => new(texts[j].ToString(), finishes[j] == "length" ? FinishKind.Length : FinishKind.Stop, null);
        try
        {
            using var response = await http.SendAsync(post, HttpCompletionOption.ResponseHeadersRead, ct);
            if (!response.IsSuccessStatusCode)
                return Outcome.Failed(plan.Choices, $"{gateway.Name} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(ct)}");
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
            while (await reader.ReadLineAsync(ct) is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                var data = line["data: ".Length..];
                if (data == "[DONE]")
                    return new([.. finishes.Select((f, j) => f is null ? new ChoiceOutcome(null, FinishKind.None, null) : Finished(j))]);
                using var json = System.Text.Json.JsonDocument.Parse(data);
                if (json.RootElement.TryGetProperty("error", out var error))
                    return Outcome.Failed(plan.Choices, $"{gateway.Name} reported an error mid-stream: {error.GetRawText()}");
                foreach (var choice in json.RootElement.GetProperty("choices").EnumerateArray())
                {
                    var j = choice.GetProperty("index").GetInt32();
                    if (j < 0 || j >= plan.Choices)
                        return Outcome.Failed(plan.Choices, $"{gateway.Name} sent choice {j} of a request with n = {plan.Choices}");
                    if (choice.TryGetProperty("text", out var t)) texts[j].Append(t.GetString());
                    if (choice.TryGetProperty("finish_reason", out var f) && f.ValueKind == System.Text.Json.JsonValueKind.String) finishes[j] = f.GetString();
                }
            }
        }
        catch (Exception e) when (e is IOException or HttpRequestException && !ct.IsCancellationRequested)
        {
            return Cut($"the stream through {gateway.Name} was cut{(gateway.HasExited ? " (the gateway was killed)" : "")}: {e.Message}");
        }
        return Cut($"the stream through {gateway.Name} ended without [DONE]{(gateway.HasExited ? " (the gateway was killed)" : "")}");
    }

    /// <summary>KV bytes still reserved on the live silos once every stream ended (0 when every session was freed).</summary>
    private static async Task<long> KvReservedAsync(LoopbackCluster cluster, TimeSpan wait)
    {
        var deadline = DateTime.UtcNow + wait;
        while (true)
        {
            var reserved = await cluster.KvReservedBytesAsync();
            if (reserved == 0 || DateTime.UtcNow > deadline) return reserved;
            await Task.Delay(250);
        }
    }
}
