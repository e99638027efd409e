namespace ProxyOrleans.Gateway.Tenants;

/// <summary>
/// Per-tenant admission through the tenant's <see cref="ITenantQuotaGrain"/> in the cluster, so that all gateway
/// replicas share one set of buckets (requests/min, tokens/min, concurrency). A refusal is a 429 with Retry-After.
/// </summary>
public sealed class QuotaLimiter(IGrainFactory grains)
{
    public readonly record struct Lease(string Tenant, QuotaLease? Quota);

    static QuotaLimits Limits(Tenant t) => new(t.RequestsPerMinute, t.TokensPerMinute, t.MaxConcurrency);
    static bool Unlimited(Tenant t) => t.RequestsPerMinute <= 0 && t.TokensPerMinute <= 0 && t.MaxConcurrency <= 0;

    /// <summary>Admits a request of <paramref name="generations"/> generations or throws 429.</summary>
    public async Task<Lease> AdmitAsync(Tenant t, int generations, int maxTokensPerGeneration)
    {
        if (Unlimited(t)) return new Lease(t.Name, null); // nothing to count: no cluster call
        QuotaDecision d;
        try { d = await grains.GetGrain<ITenantQuotaGrain>(t.Name).Admit(Limits(t), generations, maxTokensPerGeneration).WaitAsync(TimeSpan.FromSeconds(10)); }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw OpenAi.ApiError.Unavailable($"The quota service of the cluster cannot be reached right now ({e.GetType().Name}); retry shortly.", "cluster_unavailable");
        }
        if (d.Lease is null) throw OpenAi.ApiError.TooMany(d.Message ?? "Over quota.", d.Code ?? "rate_limit_exceeded", TimeSpan.FromSeconds(d.RetryAfterSeconds));
        return new Lease(t.Name, d.Lease);
    }

    /// <summary>Ends a request: frees its concurrency slots and replaces its reservation with what it used.</summary>
    public async Task ReleaseAsync(Tenant t, Lease lease, long tokensUsed)
    {
        if (lease.Quota is null) return;
        try { await grains.GetGrain<ITenantQuotaGrain>(t.Name).Release(Limits(t), lease.Quota, tokensUsed).WaitAsync(TimeSpan.FromSeconds(10)); }
        catch (Exception) { } // best effort: a lost release only delays the tenant's next requests
    }
}
