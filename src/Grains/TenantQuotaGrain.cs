namespace ProxyOrleans.Grains;

/// <summary>
/// A tenant's quotas in the cluster, so that every gateway replica draws from the same buckets (an HPA that adds
/// gateways must not multiply a tenant's limits). Token use is not known up front: admission reserves
/// max_tokens × generations (capped at the bucket size) and the reservation is settled when the request ends.
/// State is in memory: if this grain's silo dies, the tenant starts over with full buckets.
/// </summary>
public sealed class TenantQuotaGrain : Grain, ITenantQuotaGrain
{
    private static readonly TimeProvider time = TimeProvider.System;
    private double _requests, _tokens; // bucket levels; tokens may go below 0 after settlement
    private long _lastTicks;
    private bool _started;
    // Running requests' concurrency slots, by lease: a lease its gateway never released (the gateway died) lapses
    // after LeaseLifetime instead of holding the slots forever.
    private readonly Dictionary<Guid, (int Generations, long Expires)> _leases = [];
    private static readonly TimeSpan LeaseLifetime = TimeSpan.FromMinutes(30);

    private int ActiveNow()
    {
        var now = time.GetTimestamp();
        foreach (var (id, l) in _leases.Where(l => l.Value.Expires < now).ToList()) _leases.Remove(id);
        return _leases.Values.Sum(l => l.Generations);
    }

    private string Tenant => this.GetPrimaryKeyString();

    public Task<QuotaDecision> Admit(QuotaLimits t, int generations, int maxTokensPerGeneration)
    {
        Refill(t);
        var active = ActiveNow();
        if (t.MaxConcurrency > 0 && active + generations > t.MaxConcurrency)
            return Refuse("concurrency_limit_exceeded",
                $"Tenant '{Tenant}' has {active} generation(s) running and a limit of {t.MaxConcurrency} at once; retry when one finishes.", TimeSpan.FromSeconds(1));
        if (t.RequestsPerMinute > 0 && _requests < 1)
            return Refuse("requests_per_minute_exceeded",
                $"Tenant '{Tenant}' is over its limit of {t.RequestsPerMinute} requests per minute.", Wait(1 - _requests, t.RequestsPerMinute));
        var reserve = 0;
        if (t.TokensPerMinute > 0)
        {
            reserve = (int)Math.Min((long)generations * maxTokensPerGeneration, t.TokensPerMinute);
            if (_tokens < reserve)
                return Refuse("tokens_per_minute_exceeded",
                    $"Tenant '{Tenant}' is over its limit of {t.TokensPerMinute} tokens per minute " +
                    $"(this request reserves {reserve}: max_tokens × choices; lower max_tokens or wait).", Wait(reserve - _tokens, t.TokensPerMinute));
            _tokens -= reserve;
        }
        if (t.RequestsPerMinute > 0) _requests -= 1;
        var lease = new QuotaLease(reserve, generations, Guid.NewGuid());
        _leases[lease.Id] = (generations, time.GetTimestamp() + (long)(LeaseLifetime.TotalSeconds * time.TimestampFrequency));
        return Task.FromResult(new QuotaDecision(lease, null, null, 0));
    }

    public Task Release(QuotaLimits t, QuotaLease lease, long tokensUsed)
    {
        Refill(t);
        _leases.Remove(lease.Id);
        if (t.TokensPerMinute > 0) _tokens = Math.Min(t.TokensPerMinute, _tokens + lease.Reserved - tokensUsed);
        return Task.CompletedTask;
    }

    public Task<int> Active() => Task.FromResult(ActiveNow());

    private void Refill(QuotaLimits t)
    {
        var now = time.GetTimestamp();
        if (!_started)
        {
            (_requests, _tokens, _lastTicks, _started) = (t.RequestsPerMinute, t.TokensPerMinute, now, true);
            return;
        }
        var minutes = time.GetElapsedTime(_lastTicks, now).TotalMinutes;
        _lastTicks = now;
        _requests = Math.Min(t.RequestsPerMinute, _requests + minutes * t.RequestsPerMinute);
        _tokens = Math.Min(t.TokensPerMinute, _tokens + minutes * t.TokensPerMinute);
    }

    private static Task<QuotaDecision> Refuse(string code, string message, TimeSpan wait) =>
        Task.FromResult(new QuotaDecision(null, code, message, wait.TotalSeconds));

    private static TimeSpan Wait(double missing, int perMinute) => TimeSpan.FromMinutes(Math.Max(missing, 0) / perMinute);
}
