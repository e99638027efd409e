using ProxyOrleans.Gateway.OpenAi;

namespace ProxyOrleans.Gateway.Generation;

/// <summary>
/// What a "model" name can mean: a combination configured under ProxyOrleans:Combinations, or a model hosted
/// by the cluster (cached for a few seconds). Also answers readiness.
/// </summary>
public sealed class ModelCatalog(IConfiguration config, IGenerationBackend backend, GatewayOptions options,
    TimeProvider time, ILogger<ModelCatalog> log)
{
    public IReadOnlyDictionary<string, ProxySpec> Combinations { get; } = ReadCombinations(config);

    volatile IReadOnlySet<string> hosted = new HashSet<string>();
    long refreshedAt = long.MinValue;
    readonly SemaphoreSlim refreshing = new(1, 1);

    public IReadOnlySet<string> Hosted => hosted;

    /// <summary>Refreshes the hosted-model list if it is stale. Never throws: a cluster that cannot be asked hosts nothing.</summary>
    public async Task RefreshAsync(CancellationToken ct, bool force = false)
    {
        if (!force && refreshedAt != long.MinValue && time.GetElapsedTime(refreshedAt) < options.CatalogRefresh) return;
        await refreshing.WaitAsync(ct);
        try
        {
            if (!force && refreshedAt != long.MinValue && time.GetElapsedTime(refreshedAt) < options.CatalogRefresh) return;
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(TimeSpan.FromSeconds(5));
                hosted = await backend.GetHostedModelsAsync(timeout.Token);
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                log.LogWarning(e, "Could not list the models hosted by the cluster");
                hosted = new HashSet<string>();
            }
            refreshedAt = time.GetTimestamp();
        }
        finally { refreshing.Release(); }
    }

    /// <summary>A combination by name, or a hosted plain model as base-only decoding; null when unknown.</summary>
    public ProxySpec? Resolve(string model) =>
        Combinations.TryGetValue(model, out var c) ? c
        : hosted.Contains(model) ? new ProxySpec(model, [], 0f)
        : null;

    /// <summary>Models that configured combinations need and no silo hosts (empty = ready).</summary>
    public IReadOnlyList<string> MissingModels() =>
        Combinations.Values.SelectMany(c => c.Models).Distinct().Where(m => !hosted.Contains(m)).Order().ToList();

    public static IReadOnlyDictionary<string, ProxySpec> ReadCombinations(IConfiguration config)
    {
        var result = new Dictionary<string, ProxySpec>(StringComparer.Ordinal);
        foreach (var c in config.GetSection("ProxyOrleans:Combinations").GetChildren())
        {
            var baseModel = c["Base"];
            if (string.IsNullOrWhiteSpace(baseModel))
                throw new InvalidOperationException($"ProxyOrleans:Combinations:{c.Key}:Base is missing: name the base model of combination '{c.Key}'.");
            var alpha = ParseFloat(c["Alpha"], 1f, $"ProxyOrleans:Combinations:{c.Key}:Alpha");
            List<ExpertSpec> experts = [];
            foreach (var e in c.GetSection("Experts").GetChildren())
            {
                var at = $"ProxyOrleans:Combinations:{c.Key}:Experts:{e.Key}";
                var ex = e["Expert"] is { Length: > 0 } x ? x : throw new InvalidOperationException($"{at}:Expert is missing.");
                var anti = e["AntiExpert"] is { Length: > 0 } y ? y : throw new InvalidOperationException($"{at}:AntiExpert is missing.");
                experts.Add(new ExpertSpec(ex, anti, ParseFloat(e["Weight"], 1f, $"{at}:Weight")));
            }
            result[c.Key] = new ProxySpec(baseModel, experts, alpha);
        }
        return result;
    }

    static float ParseFloat(string? s, float dflt, string key)
    {
        if (string.IsNullOrWhiteSpace(s)) return dflt;
        if (!float.TryParse(s, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v) || !float.IsFinite(v))
            throw new InvalidOperationException($"{key} is '{s}', not a finite number.");
        return v;
    }
}
