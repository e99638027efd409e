namespace ProxyOrleans.Gateway.Tests;

/// <summary>
/// The cluster's tenant quota grain as the gateways use it: short leases that lapse unless renewed (a gateway that died
/// mid-request frees its tenant's slots within seconds), and prompt tokens reserved against tokens per minute.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class QuotaLeaseTests(GatewayFixture fx)
{
    [Fact]
    public async Task A_lease_that_is_not_renewed_lapses_and_frees_its_slots()
    {
        var quota = fx.ClusterClient.GetGrain<ITenantQuotaGrain>("lease-" + Guid.NewGuid().ToString("N"));
        var limits = new QuotaLimits(0, 0, MaxConcurrency: 2, LeaseSeconds: 1);
        var abandoned = (await quota.Admit(limits, 2, 4, 0)).Lease!;   // its gateway "dies": never renewed, never released
        Assert.Null((await quota.Admit(limits, 1, 4, 0)).Lease);       // the tenant is at its cap
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        Assert.Equal(0, await quota.Active());                          // lapsed (the lifetime was 30 minutes)
        Assert.False(await quota.Renew(limits, abandoned));             // and stays lapsed

        var kept = (await quota.Admit(limits, 1, 4, 0)).Lease!;
        for (int i = 0; i < 4; i++) { await Task.Delay(500); Assert.True(await quota.Renew(limits, kept)); }
        Assert.Equal(1, await quota.Active());                          // renewed past its lifetime: still held
        await quota.Release(limits, kept, 0);
        Assert.Equal(0, await quota.Active());
    }

    /// <summary>
    /// A gateway that dies mid-request never settles its lease: when the lease lapses the tenant gets the request and
    /// its token reservation back (the client saw its stream cut and retries; the retry is the one charge). A release
    /// that still comes after the lapse charges only the tokens used, not the reservation a second time.
    /// </summary>
    [Fact]
    public async Task A_lapsed_lease_gives_back_its_reservation_so_the_retry_is_the_only_charge()
    {
        var quota = fx.ClusterClient.GetGrain<ITenantQuotaGrain>("refund-" + Guid.NewGuid().ToString("N"));
        var limits = new QuotaLimits(RequestsPerMinute: 1, TokensPerMinute: 100, MaxConcurrency: 1, LeaseSeconds: 1);
        var killed = (await quota.Admit(limits, 1, 60, 0)).Lease!;         // its gateway is SIGKILLed: never renewed or released
        var early = await quota.Admit(limits, 1, 60, 0);
        Assert.Equal("concurrency_limit_exceeded", early.Code);            // the slot is held until the lease lapses
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        var retry = await quota.Admit(limits, 1, 60, 0);                    // the retry through another gateway
        Assert.True(retry.Lease is not null, $"retry refused: {retry.Code} {retry.Message}"); // not over 1 request/min nor 100 tokens/min
        Assert.Equal(60, retry.Lease!.Reserved);
        await quota.Release(limits, retry.Lease, 60);

        // Renewals late, the request still ran to its end: its release after the lapse charges what it used, once.
        var quota2 = fx.ClusterClient.GetGrain<ITenantQuotaGrain>("late-" + Guid.NewGuid().ToString("N"));
        var tokensOnly = new QuotaLimits(0, TokensPerMinute: 100, 0, LeaseSeconds: 1);
        var late = (await quota2.Admit(tokensOnly, 1, 60, 0)).Lease!;
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        await quota2.Release(tokensOnly, late, 10);                           // 100 − 10 = 90 left (plus a little refill)
        Assert.Equal("tokens_per_minute_exceeded", (await quota2.Admit(tokensOnly, 1, 95, 0)).Code); // not min(100, 100 + 60 − 10)
        Assert.NotNull((await quota2.Admit(tokensOnly, 1, 85, 0)).Lease);
    }

    [Fact]
    public async Task A_running_request_keeps_its_lease_past_its_lifetime_by_renewing_it()
    {
        // A gateway whose leases last 1 s: a request running longer must hold its slot (renewed), and give it back at the end.
        await using var gateway = await GatewayFixture.StartGatewayAsync(fx, new Dictionary<string, string?> { ["ProxyOrleans:Gateway:QuotaLeaseSeconds"] = "1" });
        var quota = fx.ClusterClient.GetGrain<ITenantQuotaGrain>("alice");
        using var stream = await gateway.Http.SendAsync(Http.Post("/v1/completions",
            System.Text.Json.JsonSerializer.Serialize(new { model = fx.Combination, prompt = "Tell a long story", max_tokens = fx.LongMaxTokens, temperature = 0, stream = true, n = 4 }),
            GatewayFixture.AliceKey), HttpCompletionOption.ResponseHeadersRead);
        var id = stream.Headers.GetValues("x-request-id").Single();
        using var reader = new StreamReader(await stream.Content.ReadAsStreamAsync());
        Assert.StartsWith("data: ", await reader.ReadLineAsync());
        // Twice the lease; four long generations sharing the cores are still running then.
        await Task.Delay(TimeSpan.FromSeconds(2));
        using var list = await gateway.Http.SendAsync(Http.Get("/v1/requests", GatewayFixture.AliceKey));
        Assert.Contains(id, await list.Content.ReadAsStringAsync());
        Assert.Equal(4, await quota.Active());
        using var cancel = await gateway.Http.SendAsync(Http.Get($"/v1/requests/{id}", GatewayFixture.AliceKey, HttpMethod.Delete));
        Assert.Equal(System.Net.HttpStatusCode.OK, cancel.StatusCode);
        await reader.ReadToEndAsync();
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (await quota.Active() > 0 && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.Equal(0, await quota.Active());
    }

    [Fact]
    public async Task Prompt_tokens_are_reserved_against_tokens_per_minute()
    {
        var quota = fx.ClusterClient.GetGrain<ITenantQuotaGrain>("prompt-" + Guid.NewGuid().ToString("N"));
        var limits = new QuotaLimits(0, TokensPerMinute: 100, 0);
        // Two running requests with long prompts and one completion token each: 2 × (80 + 1) > 100.
        var first = await quota.Admit(limits, 1, 1, 80);
        Assert.NotNull(first.Lease);
        Assert.Equal(81, first.Lease!.Reserved);
        var second = await quota.Admit(limits, 1, 1, 80);
        Assert.Null(second.Lease);
        Assert.Equal("tokens_per_minute_exceeded", second.Code);
        Assert.Contains("prompt tokens", second.Message);
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("NaN")]
    public async Task A_bad_coordinator_lease_is_refused_at_start_naming_the_key(string value)
    {
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            GatewayFixture.StartGatewayAsync(fx, new Dictionary<string, string?> { ["ProxyOrleans:Gateway:CoordinatorLeaseSeconds"] = value }));
        Assert.Contains("ProxyOrleans:Gateway:CoordinatorLeaseSeconds", e.Message);
        Assert.Contains("positive number of seconds", e.Message);
    }
}
