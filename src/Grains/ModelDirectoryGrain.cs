using Microsoft.Extensions.Options;
using ProxyOrleans.Grains.Hosting;
using ProxyOrleans.Grains.Placement;

namespace ProxyOrleans.Grains;

/// <summary>Hosted models (from silo metadata) and configured combinations; any silo answers (stateless worker).</summary>
[StatelessWorker]
public sealed class ModelDirectoryGrain(ModelDirectory directory, IOptions<ProxyOrleansOptions> options) : Grain, IModelDirectoryGrain
{
    public Task<ClusterModels> GetModels()
    {
        var hosted = directory.HostedModels();
        var names = hosted.Select(h => h.Name).ToHashSet(StringComparer.Ordinal);
        var combos = options.Value.Combinations.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c =>
        {
            var spec = c.Value.ToSpec();
            var missing = spec.Models.Where(m => !names.Contains(m)).ToArray();
            return new CombinationInfo(c.Key, spec, missing.Length == 0, missing);
        }).ToArray();
        return Task.FromResult(new ClusterModels(hosted, combos));
    }

    public Task<CombinationSpec?> Resolve(string name)
    {
        if (options.Value.Combinations.TryGetValue(name, out var c)) return Task.FromResult<CombinationSpec?>(c.ToSpec());
        if (directory.HostedModels().Any(h => h.Name == name)) return Task.FromResult<CombinationSpec?>(CombinationSpec.BaseOnly(name));
        return Task.FromResult<CombinationSpec?>(null);
    }
}
