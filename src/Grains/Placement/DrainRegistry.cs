using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ProxyOrleans.Grains.Placement;

/// <summary>
/// Which silos are draining, cluster-wide. Silo metadata is fixed at start and membership still says "active" while a
/// silo drains (the drain runs before Orleans stops it), so a draining silo announces itself here and every silo polls
/// the list (<see cref="DrainWatcher"/>): placement then puts no new coordinator or model activation there.
/// In memory: if its silo dies the list starts empty again, and draining silos leave membership soon anyway.
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

/// <summary>Polls the <see cref="IDrainRegistryGrain"/> into this silo's <see cref="ModelDirectory"/> (twice a second).</summary>
public sealed class DrainWatcher : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(500);
    private readonly IGrainFactory grains;
    private readonly ModelDirectory directory;
    private readonly ILogger log;

    public DrainWatcher(IGrainFactory grains, ModelDirectory directory, Models.HostedModels hosted, ILogger<DrainWatcher> log)
    {
        this.grains = grains; this.directory = directory; this.log = log;
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
            try { directory.SetDraining(await grains.GetGrain<IDrainRegistryGrain>(0).Draining().WaitAsync(TimeSpan.FromSeconds(2), stoppingToken)); }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { return; }
            catch (Exception e) { log.LogDebug(e, "Reading the draining silos failed (the silo may not be active yet)"); }
        }
    }
}
