using System.Diagnostics;
using System.Globalization;
using ProxyOrleans.Abstractions;

namespace ProxyOrleans.Client.Benchmarks;

/// <summary>The chaos run's shape: streams, tokens, replicas, faults, gateways and the membership store.</summary>
public sealed record ChaosOptions
{
    /// <summary><see cref="Redis"/> value that starts a redis-server of the run's own.</summary>
    public const string OwnRedis = "own";

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

/// <summary>What the chaos run counted; <see cref="KeyValues"/> is the command's last line.</summary>
/// <param name="Requests">Streams (one request each) per run.</param>
/// <param name="Choices">Choices over all streams (a <see cref="ChaosStreamKind.TwoChoices"/> stream has two): what
/// <paramref name="Identical"/>, <paramref name="Different"/>, <paramref name="FailedCleanly"/> and <paramref name="Lost"/> count.</param>
/// <param name="Different">Choices that finished without an error but with another text than their fault-free twin.</param>
/// <param name="Lost">Choices that neither finished nor failed with an error (hung past the limit, or missing from a stream that ended with [DONE]).</param>
/// <param name="GatewaysKilled">Gateway processes SIGKILLed mid-run (the choices they cut count as <paramref name="FailedCleanly"/>).</param>
/// <param name="StopsFired">Stop-sequence streams whose stop sequence ended them in the fault-free run.</param>
/// <param name="Mix">Streams per kind, counted from what the requests really asked (top_p &lt; 1, top_k &gt; 0, a stop sequence, n = 2).</param>
/// <param name="IdenticalByKind">Identical choices per kind.</param>
public sealed record ChaosResult(int Requests, int Choices, int Identical, int Different, int FailedCleanly, int Lost, long KvLeakBytes, int DrainFailures,
    int Killed, int Drained, double Seconds, int GatewaysKilled, int StopsFired,
    IReadOnlyDictionary<ChaosStreamKind, int> Mix, IReadOnlyDictionary<ChaosStreamKind, int> IdenticalByKind)
{
    public string KeyValues => string.Create(CultureInfo.InvariantCulture,
        $"chaos_requests={Requests} choices={Choices} identical={Identical} different={Different} failed_cleanly={FailedCleanly} lost={Lost} " +
        $"kv_leak_bytes={KvLeakBytes} drain_failures={DrainFailures} killed={Killed} drained={Drained} gateways_killed={GatewaysKilled} " +
        $"stops_fired={StopsFired} seconds={Seconds:F1}");
}

/// <summary>
/// What `proxyorleans chaos` runs: real silo processes on loopback TCP with Redis membership (a silo hosting no model,
/// base replicas, expert/anti-expert pair replicas) and gateway processes in front; the request mix
/// (<see cref="ChaosRequestMix"/>) run once without faults and once under the fault schedule
/// (<see cref="ChaosFaultSchedule"/>), every choice compared with its fault-free twin (<see cref="ChaosComparison"/>).
/// </summary>
public static class ChaosRun
{
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
        using var ownRedis = o.Redis == ChaosOptions.OwnRedis ? RedisProcess.Start(password: Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16))) : null;
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
            [$"ProxyOrleans:Combinations:{ChaosStreams.CombinationName}:Base"] = baseModel.Name,
            [$"ProxyOrleans:Combinations:{ChaosStreams.CombinationName}:Alpha"] = "1",
            [$"ProxyOrleans:Combinations:{ChaosStreams.CombinationName}:Experts:0:Expert"] = expert.Name,
            [$"ProxyOrleans:Combinations:{ChaosStreams.CombinationName}:Experts:0:AntiExpert"] = anti.Name,
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

    /// <summary>A probe run (the stop streams' texts, for their stop sequences), the fault-free run, the faulty run, then every choice compared.</summary>
    private static async Task<ChaosResult> RunFaultsAsync(LoopbackCluster cluster, List<GatewayProcess> gateways, CombinationSpec spec, ChaosOptions o,
        Stopwatch total, List<LoopbackCluster.SiloSpec> silos, TextWriter? progress, CancellationToken ct)
    {
        var mix = new ChaosRequestMix(spec, o.Streams, o.Tokens);
        var sw = Stopwatch.StartNew();
        using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan }; // each stream has its own limit
        var stopStreams = mix.StopStreams;
        var probe = await ChaosStreams.RunAsync(cluster, gateways, http, o, stopStreams, mix.Plan, "probe", ct);
        mix.TakeStopsFrom(stopStreams, probe);
        progress?.WriteLine($"probe run: {stopStreams.Count} stop streams in {sw.Elapsed.TotalSeconds:F1} s; stop sequences " +
                            string.Join(", ", stopStreams.Select(i => System.Text.Json.JsonSerializer.Serialize(mix.StopOf(i)))));
        sw.Restart();
        var plans = Enumerable.Range(0, o.Streams).Select(mix.Plan).ToList();
        var all = Enumerable.Range(0, o.Streams).ToList();
        var reference = await ChaosStreams.RunAsync(cluster, gateways, http, o, all, mix.Plan, "calm", ct);
        var calmSeconds = sw.Elapsed.TotalSeconds;
        progress?.WriteLine($"fault-free run: {o.Streams} streams in {calmSeconds:F1} s");

        var schedule = ChaosFaultSchedule.Draw(o, gateways.Count);
        sw.Restart();
        var faulty = ChaosStreams.RunAsync(cluster, gateways, http, o, all, mix.Plan, "chaos", ct);
        var faults = schedule.RunAsync(cluster, gateways, silos, calmSeconds, sw, progress, ct);
        var outcomes = await faulty;
        await faults;

        int drainFailures = await schedule.DrainFailuresAsync(cluster, silos, progress);
        var kvLeak = await KvReservedAsync(cluster, TimeSpan.FromSeconds(10));
        var compared = ChaosComparison.Compare(plans, reference, outcomes, progress);
        return new ChaosResult(o.Streams, plans.Sum(p => p.Choices), compared.Identical, compared.Different, compared.FailedCleanly, compared.Lost,
            kvLeak, drainFailures, schedule.Victims.Count(v => !v.Drain), schedule.Victims.Count(v => v.Drain), total.Elapsed.TotalSeconds,
            schedule.GatewayVictims.Count, ChaosComparison.StopsFired(stopStreams, probe, reference, mix), ChaosRequestMix.Count(plans), compared.IdenticalByKind);
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
