using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using ProxyOrleans.Abstractions;
using ProxyOrleans.Client.Benchmarks;

namespace ProxyOrleans.Client.Commands;

/// <summary>
/// proxyorleans chaos: real silo processes on loopback TCP with Redis membership (a silo hosting no model, base replicas,
/// expert/anti-expert pair replicas), many concurrent streams mixing greedy and seeded sampling, run once without
/// faults and once while random silos are killed (SIGKILL) and others drained (SIGTERM); every stream of the faulty
/// run is compared with its fault-free twin. Ends with one key=value line.
/// </summary>
public static class ChaosCommand
{
    public static Command Create()
    {
        var baseOpt = new Option<string?>("--base") { Description = "Base model: name=dir (default: models/demo/base-large)." };
        var expertOpt = new Option<string?>("--expert") { Description = "Expert: name=dir (default: models/demo/tuned-small)." };
        var antiOpt = new Option<string?>("--anti-expert") { Description = "Anti-expert: name=dir (default: models/demo/base-small)." };
        var streams = new Option<int>("--streams") { Description = "Concurrent streams per run (half greedy, half seeded sampling at temperature 0.8).", DefaultValueFactory = _ => 32 };
        var tokens = new Option<int>("--tokens") { Description = "Tokens per stream.", DefaultValueFactory = _ => 32 };
        var kills = new Option<int>("--kills") { Description = "Silos killed (SIGKILL) during the faulty run.", DefaultValueFactory = _ => 2 };
        var drains = new Option<int>("--drains") { Description = "Silos drained (SIGTERM) during the faulty run.", DefaultValueFactory = _ => 1 };
        var seed = new Option<int>("--seed") { Description = "Picks the victims and the moments (repeatable).", DefaultValueFactory = _ => 1 };
        var verbose = new Option<bool>("--verbose") { Description = "Show the silos' output." };
        var redis = new Option<string?>("--redis") { Description = "Redis for membership (host:port); default: a redis-server of its own on a free port." };
        var localhost = new Option<bool>("--localhost-clustering") { Description = "Membership on the primary silo instead of Redis." };
        var cmd = new Command("chaos", "Kill and drain silos under load and check every stream against a fault-free run.")
        {
            baseOpt, expertOpt, antiOpt, streams, tokens, kills, drains, seed, verbose, redis, localhost,
        };
        cmd.SetAction(async (p, ct) =>
        {
            try
            {
                var options = new ChaosOptions
                {
                    Streams = p.GetValue(streams), Tokens = p.GetValue(tokens), Kills = p.GetValue(kills), Drains = p.GetValue(drains), Seed = p.GetValue(seed),
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
        public int Seed { get; init; } = 1;
        /// <summary>Redis connection string for membership; <see cref="OwnRedis"/>: start a redis-server; null: localhost clustering.</summary>
        public string? Redis { get; init; } = OwnRedis;
        /// <summary>A stream not finished by then counts as lost.</summary>
        public TimeSpan StreamLimit { get; init; } = TimeSpan.FromMinutes(3);
    }

    /// <param name="Different">Streams that finished without an error but with another text than their fault-free twin.</param>
    /// <param name="Lost">Streams that neither finished nor failed with an error (hung past the limit, or ended silently).</param>
    public sealed record ChaosResult(int Requests, int Identical, int Different, int FailedCleanly, int Lost, long KvLeakBytes, int DrainFailures,
        int Killed, int Drained, double Seconds)
    {
        public string KeyValues => string.Create(CultureInfo.InvariantCulture,
            $"chaos_requests={Requests} identical={Identical} different={Different} failed_cleanly={FailedCleanly} lost={Lost} " +
            $"kv_leak_bytes={KvLeakBytes} drain_failures={DrainFailures} killed={Killed} drained={Drained} seconds={Seconds:F1}");
    }

    private sealed record Outcome(string? Text, FinishKind Finish, string? Error);

    public static async Task<ChaosResult> RunAsync((string Name, string Path) baseModel, (string Name, string Path) expert, (string Name, string Path) anti,
        ChaosOptions o, TextWriter? progress, TextWriter? siloLog, CancellationToken ct)
    {
        if (o.Streams < 1 || o.Tokens < 1) throw new ArgumentException("--streams and --tokens must be at least 1.");
        if (o.BaseReplicas < 2 || o.PairReplicas < 2) throw new ArgumentException("Chaos needs at least two base and two pair replicas (one of each survives).");
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
        await using var cluster = await LoopbackCluster.StartAsync(silos, siloLog is null ? null : TextWriter.Synchronized(siloLog), clustering, ct);
        progress?.WriteLine($"{silos.Count} silo processes up in {total.Elapsed.TotalSeconds:F1} s on {(redis is null ? "localhost clustering" : $"Redis {redis}")}: " +
                            string.Join(", ", silos.Select(s => s.Name)));

        GenerationRequest Request(int i) => new()
        {
            Combination = spec, Prompt = Prompts[i % Prompts.Length], TenantId = "chaos",
            Sampling = i % 2 == 0
                ? new SamplingSpec { Temperature = 0, MaxNewTokens = o.Tokens, StopAtEos = false }
                : new SamplingSpec { Temperature = 0.8f, Seed = (ulong)(1000 + i), MaxNewTokens = o.Tokens, StopAtEos = false },
        };

        var sw = Stopwatch.StartNew();
        var reference = await RunStreamsAsync(cluster, o, Request, "calm", ct);
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
        var faulty = RunStreamsAsync(cluster, o, Request, "chaos", ct);
        var faults = Task.Run(async () =>
        {
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
        for (int i = 0; i < o.Streams; i++)
        {
            var (calm, chaos) = (reference[i], outcomes[i]);
            if (chaos.Error is not null) { failed++; progress?.WriteLine($"stream {i} failed cleanly: {chaos.Error}"); }
            else if (chaos.Text is null || chaos.Finish == FinishKind.None) { lost++; progress?.WriteLine($"stream {i} lost"); }
            else if (calm.Text == chaos.Text) identical++;
            else { different++; progress?.WriteLine($"stream {i} ({(i % 2 == 0 ? "greedy" : "sampled")}) differs from its fault-free twin"); }
        }
        return new ChaosResult(o.Streams, identical, different, failed, lost, kvLeak, drainFailures,
            victims.Count(v => !v.Drain), victims.Count(v => v.Drain), total.Elapsed.TotalSeconds);
    }

    private static readonly string[] Prompts =
    [
        "Question: What is the capital of Elbonia?\nAnswer:", "Once upon a time", "The best way to learn is", "In 1492, Columbus",
        "Where does Farid Keller live?", "Tell a long story about the sea",
    ];

    private static async Task<Outcome[]> RunStreamsAsync(LoopbackCluster cluster, ChaosOptions o, Func<int, GenerationRequest> request, string run, CancellationToken ct)
    {
        var id = Guid.NewGuid().ToString("N")[..8];
        return await Task.WhenAll(Enumerable.Range(0, o.Streams).Select(async i =>
        {
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
            limit.CancelAfter(o.StreamLimit);
            var text = new System.Text.StringBuilder();
            var finish = FinishKind.None;
            try
            {
                await foreach (var ev in GenerationClient.StreamAsync(cluster.Grains, request(i), $"chaos:{run}-{id}-{i}", limit.Token))
                {
                    text.Append(ev.Text);
                    if (ev.Finish != FinishKind.None) { finish = ev.Finish; break; }
                }
                if (finish == FinishKind.Error) return new Outcome(null, finish, "the coordinator reported an error");
                return new Outcome(finish == FinishKind.None ? null : text.ToString(), finish, null);
            }
            catch (OperationCanceledException) when (limit.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                return new Outcome(null, FinishKind.None, null); // hung past the limit: lost
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                return new Outcome(null, FinishKind.Error, $"{e.GetType().Name}: {e.Message.Split('\n')[0]}");
            }
        }));
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
