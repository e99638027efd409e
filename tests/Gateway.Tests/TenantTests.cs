using System.ClientModel;
using System.Net;
using System.Text.Json;
using OpenAI.Chat;

namespace ProxyOrleans.Gateway.Tests;

/// <summary>Two tenants at once: each gets its own quotas, and neither can see or cancel the other's requests.</summary>
[Collection(GatewayCollection.Name)]
public sealed class TenantTests(GatewayFixture fx)
{
    string Body(int maxTokens = 4, int n = 1, string prompt = "A quiet morning") =>
        JsonSerializer.Serialize(new { model = fx.Combination, prompt, max_tokens = maxTokens, temperature = 0, n });

    [Fact]
    public async Task Two_tenants_at_once_quota_applies_to_one_and_not_the_other()
    {
        // Bob: 3 requests per minute. Alice: unlimited. Six requests each, all at the same time.
        var expected = fx.Direct(fx.CombinationSpec, "A quiet morning", null, 4).Text;
        var alice = Enumerable.Range(0, 6).Select(_ => fx.Http.SendAsync(Http.Post("/v1/completions", Body(), GatewayFixture.AliceKey))).ToArray();
        var bob = Enumerable.Range(0, 6).Select(_ => fx.Http.SendAsync(Http.Post("/v1/completions", Body(), GatewayFixture.BobKey))).ToArray();
        var all = await Task.WhenAll(alice.Concat(bob));
        try
        {
            foreach (var r in all[..6])
            {
                Assert.Equal(HttpStatusCode.OK, r.StatusCode);
                var text = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("choices")[0].GetProperty("text").GetString();
                Assert.Equal(expected, text);
            }
            var bobOk = all[6..].Where(r => r.StatusCode == HttpStatusCode.OK).ToList();
            var bobLimited = all[6..].Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToList();
            Assert.Equal(3, bobOk.Count);
            Assert.Equal(3, bobLimited.Count);
            foreach (var r in bobLimited)
            {
                Assert.True(r.Headers.RetryAfter?.Delta is { } d && d >= TimeSpan.FromSeconds(1), "429 must carry Retry-After in seconds");
                await Http.AssertErrorAsync(r, 429, null, "requests_per_minute_exceeded");
            }
            // The official client surfaces the same 429 (retries off so the test does not wait).
            var client = new ChatClient(fx.Combination, new ApiKeyCredential(GatewayFixture.BobKey), fx.ClientOptions(retries: 0));
            var ex = await Assert.ThrowsAsync<ClientResultException>(() => client.CompleteChatAsync([new UserChatMessage("hi")]));
            Assert.Equal(429, ex.Status);
        }
        finally { foreach (var r in all) r.Dispose(); }
    }

    [Fact]
    public async Task Two_gateway_replicas_share_one_quota()
    {
        // Erin: 3 requests per minute, counted in the cluster. Three through this gateway use them up; a second
        // replica on the same cluster (a fresh process' worth of state) must refuse the fourth, not grant 3 more.
        await using var other = await GatewayFixture.StartGatewayAsync(fx, new Dictionary<string, string?>());
        for (var i = 0; i < 3; i++)
        {
            using var ok = await fx.Http.SendAsync(Http.Post("/v1/completions", Body(), GatewayFixture.ErinKey));
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        using var limited = await other.Http.SendAsync(Http.Post("/v1/completions", Body(), GatewayFixture.ErinKey));
        await Http.AssertErrorAsync(limited, 429, null, "requests_per_minute_exceeded");
        Assert.True(limited.Headers.RetryAfter?.Delta is { } d && d >= TimeSpan.FromSeconds(1), "429 must carry Retry-After in seconds");
        using var again = await fx.Http.SendAsync(Http.Post("/v1/completions", Body(), GatewayFixture.ErinKey));
        await Http.AssertErrorAsync(again, 429, null, "requests_per_minute_exceeded");
    }

    [Fact]
    public async Task Concurrency_cap_and_tokens_per_minute_give_429()
    {
        // Dave: at most 2 generations at once and 40 tokens per minute.
        using var tooMany = await fx.Http.SendAsync(Http.Post("/v1/completions", Body(n: 3), GatewayFixture.DaveKey));
        await Http.AssertErrorAsync(tooMany, 429, null, "concurrency_limit_exceeded");
        Assert.NotNull(tooMany.Headers.RetryAfter);

        // Each request reserves max_tokens and is then charged prompt + completion tokens: the budget runs out.
        var codes = new List<HttpStatusCode>();
        HttpResponseMessage? limited = null;
        for (var i = 0; i < 10 && limited is null; i++)
        {
            var r = await fx.Http.SendAsync(Http.Post("/v1/completions", Body(maxTokens: 8), GatewayFixture.DaveKey));
            codes.Add(r.StatusCode);
            if (r.StatusCode == HttpStatusCode.TooManyRequests) limited = r; else { Assert.Equal(HttpStatusCode.OK, r.StatusCode); r.Dispose(); }
        }
        Assert.NotNull(limited);
        Assert.True(codes.Count >= 2, "the first request fits in the budget");
        await Http.AssertErrorAsync(limited!, 429, null, "tokens_per_minute_exceeded");
        Assert.True(limited!.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        limited.Dispose();

        // Another tenant is unaffected.
        using var alice = await fx.Http.SendAsync(Http.Post("/v1/completions", Body(), GatewayFixture.AliceKey));
        Assert.Equal(HttpStatusCode.OK, alice.StatusCode);
    }

    [Fact]
    public async Task A_request_is_listed_and_cancelled_by_id_on_another_gateway_replica()
    {
        // Alice streams through this gateway; a second replica (another process' worth of state) lists the request
        // and cancels it through the cluster: the stream ends early and every model session closes.
        await using var other = await GatewayFixture.StartGatewayAsync(fx, new Dictionary<string, string?>());
        using var running = await StartAlicesLongStreamAsync();
        var (id, reader) = (running.Id, running.Reader);

        using var list = await other.Http.SendAsync(Http.Get("/v1/requests", GatewayFixture.AliceKey));
        Assert.Contains(id, await list.Content.ReadAsStringAsync());
        using var bobCancel = await other.Http.SendAsync(Http.Get($"/v1/requests/{id}", GatewayFixture.BobKey, HttpMethod.Delete));
        await Http.AssertErrorAsync(bobCancel, 404, "id", "request_not_found");
        using var cancel = await other.Http.SendAsync(Http.Get($"/v1/requests/{id}", GatewayFixture.AliceKey, HttpMethod.Delete));
        Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);

        var rest = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(20));
        Assert.DoesNotContain("[DONE]", rest);
        Assert.DoesNotContain("\"finish_reason\":\"length\"", rest);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while ((fx.ActiveSessions(0) > 0 || fx.ActiveSessions(1) > 0) && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.Equal(0, fx.ActiveSessions(0) + fx.ActiveSessions(1));
        using var after = await other.Http.SendAsync(Http.Get("/v1/requests", GatewayFixture.AliceKey));
        Assert.DoesNotContain(id, await after.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_tenant_cannot_see_or_cancel_another_tenants_request()
    {
        // Alice streams a long generation; while it runs, Bob neither sees it nor can cancel it; Alice can.
        using var running = await StartAlicesLongStreamAsync();
        var (id, reader) = (running.Id, running.Reader);

        using var bobList = await fx.Http.SendAsync(Http.Get("/v1/requests", GatewayFixture.BobKey));
        Assert.DoesNotContain(id, await bobList.Content.ReadAsStringAsync());
        using var bobCancel = await fx.Http.SendAsync(Http.Get($"/v1/requests/{id}", GatewayFixture.BobKey, HttpMethod.Delete));
        await Http.AssertErrorAsync(bobCancel, 404, "id", "request_not_found");

        // Behind the gateway, the coordinator itself refuses a cancel in another tenant's name.
        await Assert.ThrowsAsync<AccessDeniedException>(() => fx.ClusterClient.GetGrain<IGenerationGrain>(
            GenerationKeys.Create(fx.BaseModel, $"alice:{id}:0")).Cancel("bob"));

        using var aliceList = await fx.Http.SendAsync(Http.Get("/v1/requests", GatewayFixture.AliceKey));
        Assert.Contains(id, await aliceList.Content.ReadAsStringAsync());
        using var aliceCancel = await fx.Http.SendAsync(Http.Get($"/v1/requests/{id}", GatewayFixture.AliceKey, HttpMethod.Delete));
        Assert.Equal(HttpStatusCode.OK, aliceCancel.StatusCode);

        // Alice's stream ends early, without [DONE] and without a finish_reason.
        var rest = await reader.ReadToEndAsync();
        Assert.DoesNotContain("[DONE]", rest);
        Assert.DoesNotContain("\"finish_reason\":\"length\"", rest);

    }

    /// <summary>A long streamed generation of Alice's through this gateway, running: its first chunk has been read.</summary>
    private async Task<RunningStream> StartAlicesLongStreamAsync()
    {
        var stream = await fx.Http.SendAsync(Http.Post("/v1/completions",
            JsonSerializer.Serialize(new { model = fx.Combination, prompt = "Tell a long story", max_tokens = fx.LongMaxTokens, temperature = 0, stream = true }),
            GatewayFixture.AliceKey), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
        var id = stream.Headers.GetValues("x-request-id").Single();
        var reader = new StreamReader(await stream.Content.ReadAsStreamAsync());
        Assert.StartsWith("data: ", await reader.ReadLineAsync()); // first chunk: the generation is running
        return new RunningStream(stream, id, reader);
    }

    /// <summary>A streamed response, its request id and the reader of the rest of its chunks.</summary>
    private sealed record RunningStream(HttpResponseMessage Response, string Id, StreamReader Reader) : IDisposable
    {
        public void Dispose()
        {
            Reader.Dispose();
            Response.Dispose();
        }
    }
}
