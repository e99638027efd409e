using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ProxyOrleans.Grains.Models;

namespace ProxyOrleans.Grains.Hosting;

/// <summary>
/// Frees the model sessions of coordinators whose silo the cluster declared dead. A resume of the generation frees them
/// too (it opens a later attempt), but when the caller died as well (a gateway and the coordinator's silo both gone)
/// nothing resumes, and the idle timeout would hold their KV for minutes.
/// </summary>
public sealed class OrphanSessionWatcher(IClusterMembershipService membership, HostedModels hosted, ILogger<OrphanSessionWatcher> log) : BackgroundService
{
    private readonly HashSet<SiloAddress> _handled = [];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(stoppingToken))
                foreach (var member in snapshot.Members.Values)
                {
                    if (member.Status != SiloStatus.Dead || !_handled.Add(member.SiloAddress)) continue;
                    var silo = member.SiloAddress.ToString();
                    int freed = hosted.Workers.Sum(w => w.CloseSessionsOfCoordinator(silo));
                    if (freed > 0) log.LogWarning("Silo {Silo} died: freed {Count} model sessions its coordinators had opened here", silo, freed);
                }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
    }
}
