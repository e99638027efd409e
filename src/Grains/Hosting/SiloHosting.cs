using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Placement;
using Orleans.Runtime.MembershipService.SiloMetadata;
using ProxyOrleans.Grains.Models;
using ProxyOrleans.Grains.Placement;

namespace ProxyOrleans.Grains.Hosting;

public static class SiloHosting
{
    /// <summary>
    /// Everything a ProxyOrleans silo needs besides clustering: the hosted models (loaded once), silo metadata
    /// advertising them, placement by that metadata, memory streams for generation events, drain on shutdown.
    /// Used by src/Silo and by the tests' in-process clusters alike.
    /// </summary>
    /// <param name="configuration">Root configuration (reads the "ProxyOrleans" section).</param>
    public static ISiloBuilder AddProxyOrleans(this ISiloBuilder silo, IConfiguration configuration, IModelLoader? loader = null)
    {
        var section = configuration.GetSection(ProxyOrleansOptions.Section);
        var options = section.Get<ProxyOrleansOptions>() ?? new ProxyOrleansOptions();
        foreach (var (name, combination) in options.Combinations)
            if (CombinationSpec.AnswerCueProblem(combination.AnswerCue) is { } problem)
                throw new InvalidOperationException($"{ProxyOrleansOptions.Section}:Combinations:{name}:AnswerCue: {problem}");
        silo.Services.Configure<ProxyOrleansOptions>(section);
        if (options.GatewayHandOffSeconds < 0)
            throw new InvalidOperationException($"{ProxyOrleansOptions.Section}:GatewayHandOffSeconds must be 0 or more; got {options.GatewayHandOffSeconds}.");
        // A stopping gateway relays its clients' calls in flight until they are answered, instead of dropping the answers.
        silo.Configure<SiloMessagingOptions>(o => o.ClientGatewayShutdownNotificationTimeout = TimeSpan.FromSeconds(options.GatewayHandOffSeconds));
        // Trace context flows through grain calls: one request is one trace across silos (docs/gateway.md).
        silo.AddActivityPropagation();
        var metadata = configuration.GetSection("Orleans:Metadata").GetChildren()
            .Where(c => c.Value is not null).ToDictionary(c => c.Key, c => c.Value!);
        var names = options.Models.Select(m => m.Name).ToList();
        if (metadata.TryGetValue(ProxyOrleansOptions.ModelsMetadataKey, out var extra))
            names.AddRange(extra.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        metadata[ProxyOrleansOptions.ModelsMetadataKey] = string.Join(",", names.Distinct(StringComparer.Ordinal));
        silo.UseSiloMetadata(metadata);

        if (loader is not null) silo.Services.AddSingleton(loader);
        else silo.Services.AddSingleton<IModelLoader, CatalogModelLoader>();
        silo.Services.AddSingleton<HostedModels>();
        silo.Services.AddHostedService(sp => sp.GetRequiredService<HostedModels>());
        silo.Services.AddSingleton<ModelDirectory>();
        silo.Services.AddHostedService<DrainWatcher>();
        silo.Services.AddHostedService<OrphanSessionWatcher>();
        silo.Services.AddSingleton<TokenizerCache>();
        silo.Services.AddPlacementFilter<ModelPlacementFilterStrategy, ModelPlacementDirector>(ServiceLifetime.Singleton);
        silo.AddMemoryStreams(Abstractions.StreamNames.Provider);
        silo.AddMemoryGrainStorage("PubSubStore");
        // Also applied per model load (InferenceOptions.Threads); here for coordinator-only silos and custom loaders.
        if (options.Inference("").Threads is > 0 and var threads) TorchSharp.torch.set_num_threads(threads);
        return silo;
    }

    /// <summary>Fast failure detection (tests, loopback demos): a dead silo is declared within a few seconds.</summary>
    public static ISiloBuilder UseFastFailureDetection(this ISiloBuilder silo) =>
        silo.Configure<ClusterMembershipOptions>(o =>
        {
            o.ProbeTimeout = TimeSpan.FromSeconds(1);
            o.NumMissedProbesLimit = 2;
            o.NumVotesForDeathDeclaration = 1;
            o.TableRefreshTimeout = TimeSpan.FromSeconds(1);
            o.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(2);
            o.DeathVoteExpirationTimeout = TimeSpan.FromSeconds(10);
        });
}
