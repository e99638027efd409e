namespace ProxyOrleans.Gateway.Generation;

/// <summary>
/// What a "model" name can mean: a combination (configured on the silos — the directory grain reports them —
/// or in the gateway's own ProxyOrleans:Combinations, which wins on a name clash) or a model some silo hosts.
/// The cluster's answer is cached for a few seconds. Also answers readiness.
/// </summary>
public sealed class ModelCatalog(IConfiguration config, IGenerationBackend backend, GatewayOptions options,
    TimeProvider time, ILogger<ModelCatalog> log)
{
    /// <summary>Combinations from the gateway's configuration.</summary>
    public IReadOnlyDictionary<string, CombinationSpec> Configured { get; } = ReadCombinations(config);

    sealed record Snapshot(IReadOnlySet<string> Hosted, IReadOnlyDictionary<string, CombinationSpec> Combinations, string? Error);

    volatile Snapshot snapshot = new(new HashSet<string>(), new Dictionary<string, CombinationSpec>(), "not asked yet");
    long refreshedAt = long.MinValue;
    readonly SemaphoreSlim refreshing = new(1, 1);

    public IReadOnlySet<string> Hosted => snapshot.Hosted;
    public IReadOnlyDictionary<string, CombinationSpec> Combinations => snapshot.Combinations;
    /// <summary>Why the cluster could not be asked at the last refresh (null when it answered).</summary>
    public string? Error => snapshot.Error;

    /// <summary>Refreshes from the cluster if stale. Never throws: a cluster that cannot be asked hosts nothing.</summary>
    public async Task RefreshAsync(CancellationToken ct, bool force = false)
    {
        if (!force && Fresh()) return;
        await refreshing.WaitAsync(ct);
        try
        {
            if (!force && Fresh()) return;
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(TimeSpan.FromSeconds(5));
                var cluster = await backend.GetModelsAsync(timeout.Token);
                var combos = cluster.Combinations.ToDictionary(c => c.Name, c => c.Spec, StringComparer.Ordinal);
                foreach (var (name, spec) in Configured) combos[name] = spec;
                snapshot = new(cluster.Models.Where(m => m.Silos.Length > 0).Select(m => m.Name).ToHashSet(StringComparer.Ordinal), combos, null);
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                log.LogWarning(e, "Could not list the models hosted by the cluster");
                snapshot = new(new HashSet<string>(), new Dictionary<string, CombinationSpec>(Configured), e.Message);
            }
            refreshedAt = time.GetTimestamp();
        }
        finally { refreshing.Release(); }
    }

    bool Fresh() => refreshedAt != long.MinValue && time.GetElapsedTime(refreshedAt) < options.CatalogRefresh;

    /// <summary>A combination by name, or a hosted plain model as base-only decoding; null when unknown.</summary>
    public CombinationSpec? Resolve(string model) =>
        Combinations.TryGetValue(model, out var c) ? c
        : Hosted.Contains(model) ? CombinationSpec.BaseOnly(model)
        : null;

    /// <summary>Models that known combinations need and no silo hosts (empty and something hosted = ready).</summary>
    public IReadOnlyList<string> MissingModels() =>
        Combinations.Values.SelectMany(c => c.Models).Distinct().Where(m => !Hosted.Contains(m)).Order().ToList();

    public bool Ready => Error is null && Hosted.Count > 0 && MissingModels().Count == 0;

    public static IReadOnlyDictionary<string, CombinationSpec> ReadCombinations(IConfiguration config)
    {
        var result = new Dictionary<string, CombinationSpec>(StringComparer.Ordinal);
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
            var cue = c["AnswerCue"];
            if (CombinationSpec.AnswerCueProblem(cue) is { } problem)
                throw new InvalidOperationException($"ProxyOrleans:Combinations:{c.Key}:AnswerCue: {problem}");
            result[c.Key] = new CombinationSpec(baseModel, experts.ToArray(), alpha, cue, c["ExpertResponsePrefix"]);
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
