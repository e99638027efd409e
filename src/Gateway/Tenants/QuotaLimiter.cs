namespace ProxyOrleans.Gateway.Tenants;

/// <summary>
/// Per-tenant admission through the tenant's <see cref="ITenantQuotaGrain"/> in the cluster, so that all gateway
/// replicas share one set of buckets (requests/min, tokens/min, concurrency). A refusal is a 429 with Retry-After.
/// </summary>
public sealed class QuotaLimiter(IGrainFactory grains, GatewayOptions options, ILogger<QuotaLimiter> log)
{
    public readonly record struct Lease(string Tenant, QuotaLease? Quota);

    QuotaLimits Limits(Tenant t) => new(t.RequestsPerMinute, t.TokensPerMinute, t.MaxConcurrency, options.QuotaLeaseSeconds);
    static bool Unlimited(Tenant t) => t.RequestsPerMinute <= 0 && t.TokensPerMinute <= 0 && t.MaxConcurrency <= 0;

    /// <summary>Admits a request of <paramref name="generations"/> generations or throws 429.</summary>
    public async Task<Lease> AdmitAsync(Tenant t, int generations, int maxTokensPerGeneration, int promptTokens = 0)
    {
        if (Unlimited(t)) return new Lease(t.Name, null); // nothing to count: no cluster call
        QuotaDecision d;
        try { d = await grains.GetGrain<ITenantQuotaGrain>(t.Name).Admit(Limits(t), generations, maxTokensPerGeneration, promptTokens).WaitAsync(TimeSpan.FromSeconds(10)); }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw OpenAi.ApiError.Unavailable($"The quota service of the cluster cannot be reached right now ({e.GetType().Name}); retry shortly.", "cluster_unavailable");
        }
        if (d.Lease is null) throw OpenAi.ApiError.TooMany(d.Message ?? "Over quota.", d.Code ?? "rate_limit_exceeded", TimeSpan.FromSeconds(d.RetryAfterSeconds));
        return new Lease(t.Name, d.Lease);
    }

    /// <summary>
    /// Renews the lease every third of its lifetime until <paramref name="ct"/> ends (the request finished): a gateway
    /// that dies stops renewing and the tenant's slots come back within QuotaLeaseSeconds.
    /// </summary>
    public async Task KeepAliveAsync(Tenant t, Lease lease, CancellationToken ct)
    {
        if (lease.Quota is null) return;
        var every = TimeSpan.FromSeconds(Math.Max(0.2, options.QuotaLeaseSeconds / 3));
        while (!ct.IsCancellationRequested)
        {
            try { await Task.Delay(every, ct); } catch (OperationCanceledException) { return; }
            try
            {
                if (!await grains.GetGrain<ITenantQuotaGrain>(t.Name).Renew(Limits(t), lease.Quota).WaitAsync(TimeSpan.FromSeconds(5), ct))
                    log.LogWarning("Quota lease of tenant {Tenant} had lapsed before its renewal (the quota grain restarted or renewals were late)", t.Name);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }
            catch (Exception e) { log.LogDebug(e, "Renewing a quota lease failed; retrying at the next period"); }
        }
    }

    /// <summary>Ends a request: frees its concurrency slots and replaces its reservation with what it used.</summary>
    public async Task ReleaseAsync(Tenant t, Lease lease, long tokensUsed)
    {
        if (lease.Quota is null) return;
        try { await grains.GetGrain<ITenantQuotaGrain>(t.Name).Release(Limits(t), lease.Quota, tokensUsed).WaitAsync(TimeSpan.FromSeconds(10)); }
        catch (Exception) { } // best effort: a lost release only delays the tenant's next requests
    }
}
