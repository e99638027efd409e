using Orleans.Placement;
using Orleans.Runtime.Placement;
using ProxyOrleans.Grains.Hosting;

namespace ProxyOrleans.Grains.Placement;

/// <summary>Places model, pair and coordinator grains by the model names in their keys (see <see cref="ModelPlacementDirector"/>).</summary>
public sealed class ModelPlacementFilterStrategy() : PlacementFilterStrategy(order: 0);

[AttributeUsage(AttributeTargets.Class)]
public sealed class ModelPlacementFilterAttribute() : PlacementFilterAttribute(new ModelPlacementFilterStrategy());

/// <summary>
/// Keys and where they go:
/// "name" / "name#r"            model grain: only silos hosting name; replica r on the r-th of them (sorted).
/// "expert~anti" / "...#r"      pair grain: only silos hosting both.
/// "base/request"               coordinator: silos hosting base if any (its logits then stay local), else any silo.
/// "/request"                   coordinator on a silo hosting no model if there is one, else anywhere.
/// No candidate: empty set, and Orleans refuses at once ("No active nodes are compatible") — not retried.
/// </summary>
public sealed class ModelPlacementDirector(ModelDirectory directory) : IPlacementFilterDirector
{
    public IEnumerable<SiloAddress> Filter(PlacementFilterStrategy filterStrategy, PlacementTarget target, IEnumerable<SiloAddress> silos)
    {
        var key = target.GrainIdentity.Key.ToString()!;
        var all = silos.ToList();
        // Draining silos take no new activations (coordinators, model replicas), unless nothing else is left.
        var candidates = all.Where(s => !directory.IsDraining(s)).ToList();
        if (candidates.Count == 0) candidates = all;
        int slash = key.IndexOf('/');
        if (slash >= 0)
        {
            var baseModel = key[..slash];
            if (baseModel.Length == 0)
            {
                // "Anywhere": prefer silos that host no model (a coordinator-only node), else any silo.
                var empty = candidates.Where(s => directory.ModelsOf(s).Count == 0).ToList();
                return empty.Count > 0 ? empty : candidates;
            }
            var hosting = candidates.Where(s => directory.Hosts(s, baseModel)).ToList();
            return hosting.Count > 0 ? hosting : candidates;
        }
        var (models, replica) = ParseModelKey(key);
        var matching = candidates.Where(s => models.All(m => directory.Hosts(s, m))).OrderBy(s => s.ToString(), StringComparer.Ordinal).ToList();
        if (matching.Count <= 1 || replica is null) return matching;
        return [matching[replica.Value % matching.Count]];
    }

    /// <summary>"a~b#3" → ([a, b], 3).</summary>
    public static (string[] Models, int? Replica) ParseModelKey(string key)
    {
        int? replica = null;
        int hash = key.LastIndexOf('#');
        if (hash >= 0 && int.TryParse(key.AsSpan(hash + 1), out var r)) { replica = r; key = key[..hash]; }
        return (key.Split('~'), replica);
    }
}
