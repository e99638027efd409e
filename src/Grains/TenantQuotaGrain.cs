namespace ProxyOrleans.Grains;

/// <summary>
/// A tenant's quotas in the cluster, so that every gateway replica draws from the same buckets (an HPA that adds
/// gateways must not multiply a tenant's limits). Token use is not known up front: admission reserves
/// max_tokens × generations (capped at the bucket size) and the reservation is settled when the request ends.
/// State is in memory: if this grain's silo dies, the tenant starts over with full buckets.
/// A lease that lapses (its gateway died: the client saw its stream cut and gets no usage) gives its request and its
/// token reservation back, so the client's retry is the only charge for that answer; a release that comes after the
/// lapse (renewals were late, the gateway lived) charges just the tokens used.
/// </summary>
public sealed class TenantQuotaGrain : Grain, ITenantQuotaGrain
{
    private static readonly TimeProvider time = TimeProvider.System;
    private double _requests, _tokens; // bucket levels; tokens may go below 0 after settlement
    private long _lastTicks;
    private bool _started;
    // Running requests' concurrency slots, by lease. Leases are short and renewed by their gateway while the request
    // runs: one whose gateway died lapses after QuotaLimits.LeaseSeconds instead of holding the slots (it was 30 min).
    private readonly Dictionary<Guid, (int Generations, int Reserved, long Expires)> _leases = [];
    private int _requestsPerMinute, _tokensPerMinute; // the buckets' sizes as last configured: a refund never fills them past that

    private static long ExpiresAt(QuotaLimits t) =>
        time.GetTimestamp() + (long)(Math.Max(1, t.LeaseSeconds) * time.TimestampFrequency);

    private int ActiveNow()
    {
        var now = time.GetTimestamp();
        foreach (var (id, l) in _leases.Where(l => l.Value.Expires < now).ToList())
        {
            _leases.Remove(id);
            if (_requestsPerMinute > 0) _requests = Math.Min(_requestsPerMinute, _requests + 1);
            if (_tokensPerMinute > 0) _tokens = Math.Min(_tokensPerMinute, _tokens + l.Reserved);
        }
        return _leases.Values.Sum(l => l.Generations);
    }

    private string Tenant => this.GetPrimaryKeyString();

    public Task<QuotaDecision> Admit(QuotaLimits t, int generations, int maxTokensPerGeneration, int promptTokens)
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
            reserve = (int)Math.Min((long)generations * maxTokensPerGeneration + Math.Max(0, promptTokens), t.TokensPerMinute);
            if (_tokens < reserve)
                return Refuse("tokens_per_minute_exceeded",
                    $"Tenant '{Tenant}' is over its limit of {t.TokensPerMinute} tokens per minute " +
                    $"(this request reserves {reserve}: about {Math.Max(0, promptTokens)} prompt tokens + max_tokens × choices; shorten it, lower max_tokens or wait).",
                    Wait(reserve - _tokens, t.TokensPerMinute));
            _tokens -= reserve;
        }
        if (t.RequestsPerMinute > 0) _requests -= 1;
        var lease = new QuotaLease(reserve, generations, Guid.NewGuid());
        _leases[lease.Id] = (generations, reserve, ExpiresAt(t));
        return Task.FromResult(new QuotaDecision(lease, null, null, 0));
    }

    public Task<bool> Renew(QuotaLimits t, QuotaLease lease)
    {
        ActiveNow(); // drops lapsed leases first: a lapsed lease stays lapsed
        if (!_leases.TryGetValue(lease.Id, out var l)) return Task.FromResult(false);
        _leases[lease.Id] = l with { Expires = ExpiresAt(t) };
        return Task.FromResult(true);
    }

    public Task Release(QuotaLimits t, QuotaLease lease, long tokensUsed)
    {
        Refill(t);
        ActiveNow(); // a lease that lapsed meanwhile has had its reservation back already
        bool live = _leases.Remove(lease.Id);
        if (t.TokensPerMinute > 0) _tokens = Math.Min(t.TokensPerMinute, _tokens + (live ? lease.Reserved : 0) - tokensUsed);
        return Task.CompletedTask;
    }

    public Task<int> Active() => Task.FromResult(ActiveNow());

    private void Refill(QuotaLimits t)
    {
        var now = time.GetTimestamp();
        (_requestsPerMinute, _tokensPerMinute) = (t.RequestsPerMinute, t.TokensPerMinute);
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
