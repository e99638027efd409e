namespace ProxyOrleans.Gateway.Tenants;

/// <summary>
/// Per-tenant admission: a token bucket for requests/min, one for tokens/min, and a concurrency counter.
/// Token use is not known up front, so admission reserves max_tokens × generations (capped at the bucket size)
/// and the reservation is settled with the real prompt + completion counts when the request ends.
/// </summary>
public sealed class QuotaLimiter(TimeProvider time)
{
    sealed class State
    {
        public double Requests, Tokens;       // bucket levels; Tokens may go below 0 after settlement
        public long LastTicks;
        public int Active;
    }

    readonly Dictionary<string, State> states = [];

    public readonly record struct Lease(string Tenant, int Reserved, int Generations);

    /// <summary>Admits a request of <paramref name="generations"/> generations or throws 429.</summary>
    public Lease Admit(Tenant t, int generations, int maxTokensPerGeneration)
    {
        lock (states)
        {
            var s = Refill(t);
            if (t.MaxConcurrency > 0 && s.Active + generations > t.MaxConcurrency)
                throw OpenAi.ApiError.TooMany(
                    $"Tenant '{t.Name}' has {s.Active} generation(s) running and a limit of {t.MaxConcurrency} at once; retry when one finishes.",
                    "concurrency_limit_exceeded", TimeSpan.FromSeconds(1));
            if (t.RequestsPerMinute > 0 && s.Requests < 1)
                throw OpenAi.ApiError.TooMany(
                    $"Tenant '{t.Name}' is over its limit of {t.RequestsPerMinute} requests per minute.",
                    "requests_per_minute_exceeded", Wait(1 - s.Requests, t.RequestsPerMinute));
            var reserve = 0;
            if (t.TokensPerMinute > 0)
            {
                reserve = (int)Math.Min((long)generations * maxTokensPerGeneration, t.TokensPerMinute);
                if (s.Tokens < reserve)
                    throw OpenAi.ApiError.TooMany(
                        $"Tenant '{t.Name}' is over its limit of {t.TokensPerMinute} tokens per minute " +
                        $"(this request reserves {reserve}: max_tokens × choices; lower max_tokens or wait).",
                        "tokens_per_minute_exceeded", Wait(reserve - s.Tokens, t.TokensPerMinute));
                s.Tokens -= reserve;
            }
            if (t.RequestsPerMinute > 0) s.Requests -= 1;
            s.Active += generations;
            return new Lease(t.Name, reserve, generations);
        }
    }

    /// <summary>Ends a request: frees its concurrency slots and replaces its reservation with what it used.</summary>
    public void Release(Tenant t, Lease lease, long tokensUsed)
    {
        lock (states)
        {
            var s = Refill(t);
            s.Active -= lease.Generations;
            if (t.TokensPerMinute > 0) s.Tokens = Math.Min(t.TokensPerMinute, s.Tokens + lease.Reserved - tokensUsed);
        }
    }

    public int Active(string tenant)
    {
        lock (states) return states.TryGetValue(tenant, out var s) ? s.Active : 0;
    }

    State Refill(Tenant t)
    {
        var now = time.GetTimestamp();
        if (!states.TryGetValue(t.Name, out var s))
        {
            s = new State { Requests = t.RequestsPerMinute, Tokens = t.TokensPerMinute, LastTicks = now };
            states[t.Name] = s;
            return s;
        }
        var minutes = time.GetElapsedTime(s.LastTicks, now).TotalMinutes;
        s.LastTicks = now;
        s.Requests = Math.Min(t.RequestsPerMinute, s.Requests + minutes * t.RequestsPerMinute);
        s.Tokens = Math.Min(t.TokensPerMinute, s.Tokens + minutes * t.TokensPerMinute);
        return s;
    }

    static TimeSpan Wait(double missing, int perMinute) => TimeSpan.FromMinutes(Math.Max(missing, 0) / perMinute);
}
