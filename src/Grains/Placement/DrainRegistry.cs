using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ProxyOrleans.Grains.Placement;

/// <summary>
/// Which silos are draining, cluster-wide. Silo metadata is fixed at start and membership still says "active" while a
/// silo drains (the drain runs before Orleans stops it), so a draining silo announces itself here and every silo polls
/// the list (<see cref="DrainWatcher"/>): placement then puts no new coordinator or model activation there.
/// In memory only: if its silo dies the grain is re-activated elsewhere with an empty list, so every draining silo
/// re-announces itself on each poll and the new activation is refilled within one <see cref="DrainWatcher.Interval"/>.
/// </summary>
public interface IDrainRegistryGrain : IGrainWithIntegerKey
{
    Task Announce(SiloAddress silo);
    Task<SiloAddress[]> Draining();
}

public sealed class DrainRegistryGrain(IClusterMembershipService membership) : Grain, IDrainRegistryGrain
{
    private readonly HashSet<SiloAddress> _draining = [];

    public Task Announce(SiloAddress silo)
    {
        _draining.Add(silo);
        return Task.CompletedTask;
    }

    public Task<SiloAddress[]> Draining()
    {
        // Silos that have left the cluster are no longer of interest.
        var members = membership.CurrentSnapshot.Members;
        _draining.RemoveWhere(s => !members.TryGetValue(s, out var m) || m.Status is SiloStatus.Dead);
        return Task.FromResult(_draining.ToArray());
    }
}

/// <summary>
/// Polls the <see cref="IDrainRegistryGrain"/> into this silo's <see cref="ModelDirectory"/> (twice a second); while this
/// silo drains it also re-announces itself on each poll (the registry's silo may have died and taken the list with it).
/// </summary>
public sealed class DrainWatcher : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(500);
    private readonly IGrainFactory grains;
    private readonly ModelDirectory directory;
    private readonly Models.HostedModels hosted;
    private readonly ILogger log;

    public DrainWatcher(IGrainFactory grains, ModelDirectory directory, Models.HostedModels hosted, ILogger<DrainWatcher> log)
    {
        this.grains = grains; this.directory = directory; this.hosted = hosted; this.log = log;
        hosted.AnnounceDrain = async () =>
        {
            await grains.GetGrain<IDrainRegistryGrain>(0).Announce(directory.LocalSilo);
            directory.SetDraining([directory.LocalSilo]); // this silo knows at once
        };
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try { await Task.Delay(Interval, stoppingToken); }
            catch (OperationCanceledException) { return; }
            try
            {
                var registry = grains.GetGrain<IDrainRegistryGrain>(0);
                // Through the hook, so that a silo told not to announce (tests of the window before the cluster knows) stays silent.
                if (hosted.Draining && hosted.AnnounceDrain is { } announce) await announce().WaitAsync(TimeSpan.FromSeconds(2), stoppingToken);
                var draining = await registry.Draining().WaitAsync(TimeSpan.FromSeconds(2), stoppingToken);
                // This silo knows it drains whatever the registry says (a fresh activation may not have heard yet).
                directory.SetDraining(hosted.Draining ? draining.Append(directory.LocalSilo) : draining);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { return; }
            catch (Exception e) { log.LogDebug(e, "Reading the draining silos failed (the silo may not be active yet)"); }
        }
    }
}
