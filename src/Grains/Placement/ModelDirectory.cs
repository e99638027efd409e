using Microsoft.Extensions.Options;
using Orleans.Runtime.MembershipService.SiloMetadata;
using ProxyOrleans.Grains.Hosting;

namespace ProxyOrleans.Grains.Placement;

/// <summary>Which active silo hosts which model, read from the silos' metadata (key "proxyorleans.models").</summary>
public sealed class ModelDirectory(ISiloMetadataCache metadata, IClusterMembershipService membership, ILocalSiloDetails local)
{
    public SiloAddress LocalSilo => local.SiloAddress;

    public IReadOnlyList<string> ModelsOf(SiloAddress silo)
    {
        var md = metadata.GetSiloMetadata(silo);
        return md.Metadata.TryGetValue(ProxyOrleansOptions.ModelsMetadataKey, out var list)
            ? list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : [];
    }

    public bool Hosts(SiloAddress silo, string model) => ModelsOf(silo).Contains(model, StringComparer.Ordinal);

    private volatile HashSet<SiloAddress> _draining = [];

    /// <summary>Silos announced as draining (<see cref="DrainRegistryGrain"/>): they take no new coordinators or sessions.</summary>
    public bool IsDraining(SiloAddress silo) => _draining.Contains(silo);

    public void SetDraining(IEnumerable<SiloAddress> silos) => _draining = [.. silos];

    /// <summary>Active silos that are not draining, sorted.</summary>
    public IReadOnlyList<SiloAddress> ActiveSilos =>
        membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active && !IsDraining(m.SiloAddress)).Select(m => m.SiloAddress)
            .OrderBy(s => s.ToString(), StringComparer.Ordinal).ToList();

    /// <summary>Active silos hosting all of <paramref name="models"/>, sorted (the order replica indices refer to).</summary>
    public IReadOnlyList<SiloAddress> SilosHosting(params string[] models) =>
        ActiveSilos.Where(s => models.All(m => Hosts(s, m))).ToList();

    public HostedModel[] HostedModels() =>
        ActiveSilos.SelectMany(s => ModelsOf(s).Select(m => (m, s)))
            .GroupBy(x => x.m, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new HostedModel(g.Key, g.Select(x => x.s.ToString()).ToArray())).ToArray();

    /// <summary>Throws <see cref="ModelNotHostedException"/> at once for a model no active silo hosts.</summary>
    public void EnsureHosted(string model)
    {
        if (SilosHosting(model).Count == 0) throw new ModelNotHostedException(model, HostedModels().Select(h => h.Name));
    }
}
