using System.Diagnostics;

namespace ProxyOrleans.Client.Benchmarks;

/// <summary>
/// The faulty run's faults: which silos are killed (SIGKILL) or drained (SIGTERM), never the last live replica of a
/// role, and which gateways are killed; drawn from the run's seed, so repeatable. <see cref="RunAsync"/> spreads them
/// over the run, timed by the length of the fault-free run.
/// </summary>
/// <param name="Victims">Silo indexes (0 is the primary, never a victim), alternating base and pair silos.</param>
internal sealed record ChaosFaultSchedule(List<(int Silo, bool Drain)> Victims, List<int> GatewayVictims, Random Random)
{
    /// <summary>Silos 1..BaseReplicas are the base replicas, the next PairReplicas the pair replicas.</summary>
    public static ChaosFaultSchedule Draw(ChaosOptions o, int gateways)
    {
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
        var gatewayVictims = Enumerable.Range(0, gateways).OrderBy(_ => random.Next()).Take(o.GatewayKills).ToList();
        return new ChaosFaultSchedule(victims, gatewayVictims, random);
    }

    /// <summary>
    /// The gateways die first: a generation whose coordinator's silo dies after its gateway did is never resumed, and
    /// its sessions on the surviving silos stay reserved until their idle timeout (no resume closes them).
    /// </summary>
    public Task RunAsync(LoopbackCluster cluster, List<GatewayProcess> gateways, List<LoopbackCluster.SiloSpec> silos, double calmSeconds,
        Stopwatch sw, TextWriter? progress, CancellationToken ct) => Task.Run(async () =>
    {
        foreach (var g in GatewayVictims)
        {
            await Task.Delay(TimeSpan.FromSeconds(calmSeconds * (0.1 + 0.2 * Random.NextDouble()) / Math.Max(1, GatewayVictims.Count)), ct);
            progress?.WriteLine($"{sw.Elapsed.TotalSeconds:F1} s: killing (SIGKILL) {gateways[g].Name}");
            gateways[g].Kill();
        }
        foreach (var (silo, drain) in Victims)
        {
            // Spread the faults over the middle of the run (its length measured by the fault-free run).
            await Task.Delay(TimeSpan.FromSeconds(calmSeconds * (0.15 + 0.6 * Random.NextDouble()) / Math.Max(1, Victims.Count)), ct);
            progress?.WriteLine($"{sw.Elapsed.TotalSeconds:F1} s: {(drain ? "draining (SIGTERM)" : "killing (SIGKILL)")} {silos[silo].Name}");
            if (drain) cluster.Terminate(silo); else cluster.Kill(silo);
        }
    }, ct);

    /// <summary>How many drained silos did not exit with 0 within a minute.</summary>
    public async Task<int> DrainFailuresAsync(LoopbackCluster cluster, List<LoopbackCluster.SiloSpec> silos, TextWriter? progress)
    {
        int drainFailures = 0;
        foreach (var (silo, _) in Victims.Where(v => v.Drain))
        {
            var code = await cluster.WaitForExitAsync(silo, TimeSpan.FromSeconds(60));
            if (code != 0) { drainFailures++; progress?.WriteLine($"{silos[silo].Name} did not drain cleanly: exit {code?.ToString() ?? "none within 60 s"}"); }
        }
        return drainFailures;
    }
}
