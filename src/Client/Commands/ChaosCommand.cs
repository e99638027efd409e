using System.CommandLine;
using ProxyOrleans.Client.Benchmarks;

namespace ProxyOrleans.Client.Commands;

/// <summary>
/// proxyorleans chaos: real silo processes on loopback TCP with Redis membership (a silo hosting no model, base replicas,
/// expert/anti-expert pair replicas) and gateway processes in front, many concurrent streamed completions (spread over
/// the gateways) cycling through greedy, top-p, top-k, a stop sequence and n = 2 (<see cref="ChaosStreamKind"/>), run once without faults and once while random silos are killed
/// (SIGKILL) and others drained (SIGTERM) and a gateway is killed (SIGKILL); every stream of the faulty run is compared
/// with its fault-free twin, choice by choice. A choice cut by its gateway's death fails cleanly (the client sees the
/// stream end without [DONE] before that choice's finish reason).
/// Ends with one key=value line. The run itself is <see cref="ChaosRun"/> (src/Client/Benchmarks).
/// </summary>
public static class ChaosCommand
{
    public static Command Create()
    {
        var trio = new ModelTrioOptions();
        var streams = new Option<int>("--streams") { Description = "Concurrent streams per run, cycling through greedy, top_p 0.9, top_k 40, a stop sequence and n = 2 (seeded sampling at temperature 0.8 but the greedy ones).", DefaultValueFactory = _ => 32 };
        var tokens = new Option<int>("--tokens") { Description = "Tokens per stream.", DefaultValueFactory = _ => 32 };
        var kills = new Option<int>("--kills") { Description = "Silos killed (SIGKILL) during the faulty run.", DefaultValueFactory = _ => 2 };
        var drains = new Option<int>("--drains") { Description = "Silos drained (SIGTERM) during the faulty run.", DefaultValueFactory = _ => 1 };
        var gateways = new Option<int>("--gateways") { Description = "Gateway processes the streams go through (0: straight to the cluster with the Orleans client).", DefaultValueFactory = _ => 2 };
        var gatewayKills = new Option<int?>("--gateway-kills") { Description = "Gateways killed (SIGKILL) during the faulty run; one always survives (default: 1 with two or more gateways, else 0)." };
        var seed = new Option<int>("--seed") { Description = "Picks the victims and the moments (repeatable).", DefaultValueFactory = _ => 1 };
        var redis = new Option<string?>("--redis") { Description = "Redis for membership (host:port); default: a redis-server of its own on a free port." };
        var localhost = new Option<bool>("--localhost-clustering") { Description = "Membership on the primary silo instead of Redis." };
        var cmd = new Command("chaos", "Kill and drain silos under load and check every stream against a fault-free run.")
        {
            trio.Base, trio.Expert, trio.AntiExpert, streams, tokens, kills, drains, gateways, gatewayKills, seed, trio.Verbose, redis, localhost,
        };
        cmd.SetAction(async (p, ct) =>
        {
            try
            {
                var options = new ChaosOptions
                {
                    Streams = p.GetValue(streams), Tokens = p.GetValue(tokens), Kills = p.GetValue(kills), Drains = p.GetValue(drains), Seed = p.GetValue(seed),
                    Gateways = p.GetValue(gateways), GatewayKills = p.GetValue(gatewayKills) ?? (p.GetValue(gateways) >= 2 ? 1 : 0),
                    Redis = p.GetValue(localhost) ? null : p.GetValue(redis) ?? ChaosOptions.OwnRedis,
                };
                var (baseModel, expert, anti) = trio.Models(p);
                var result = await ChaosRun.RunAsync(baseModel, expert, anti, options, Console.Out, p.GetValue(trio.Verbose) ? Console.Out : null, ct);
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
}
