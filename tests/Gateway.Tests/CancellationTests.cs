using System.Text.Json;

namespace ProxyOrleans.Gateway.Tests;

[Collection(GatewayCollection.Name)]
public sealed class CancellationTests(GatewayFixture fx)
{
    [Fact]
    public async Task Client_disconnect_cancels_the_generation_on_the_cluster()
    {
        var events = await fx.WatchGenerationsAsync("alice");
        using var cts = new CancellationTokenSource();
        // A client that really hangs up: by default HttpClient drains an unread response (up to 1 MB or 2 s) to reuse
        // the connection, and a fast generation then completes before the server sees any disconnect.
        using var hangingUp = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = fx.BaseUri };
        var response = await hangingUp.SendAsync(Http.Post("/v1/chat/completions",
            JsonSerializer.Serialize(new
            {
                model = fx.Combination, max_tokens = fx.LongMaxTokens, temperature = 0, stream = true,
                messages = new[] { new { role = "user", content = "Tell a very long story" } },
            }), GatewayFixture.AliceKey), HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var id = response.Headers.GetValues("x-request-id").Single();
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
        Assert.StartsWith("data: ", await reader.ReadLineAsync(cts.Token));

        // Running: the base's session on silo 0, the expert's and anti-expert's on silo 1.
        Assert.True(fx.ActiveSessions(0) >= 1, "base session open on silo 0");
        Assert.True(fx.ActiveSessions(1) >= 2, "expert and anti-expert sessions open on silo 1");

        // Hang up mid-stream.
        cts.Cancel();
        response.Dispose();

        // The coordinator stops well before max_tokens (uncancelled, these models run to the limit: checked
        // at fixture start) and every silo frees its sessions.
        var finished = await events.WaitForAsync(e => e.RequestId.Contains(id) && e.Kind == GenerationEventKind.Finished, TimeSpan.FromSeconds(30));
        Assert.True(finished.Finish == FinishKind.Cancelled, $"finished {finished.Finish} at step {finished.Step} of {fx.LongMaxTokens} instead of Cancelled");
        Assert.True(finished.Step < fx.LongMaxTokens - 1, $"stopped at step {finished.Step} of {fx.LongMaxTokens}");
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while ((fx.ActiveSessions(0) > 0 || fx.ActiveSessions(1) > 0) && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.Equal(0, fx.ActiveSessions(0));
        Assert.Equal(0, fx.ActiveSessions(1));

        // And the gateway lets go of it (its cleanup runs once the cancelled grain call has unwound).
        string listed = "";
        for (var until = DateTime.UtcNow.AddSeconds(15); DateTime.UtcNow < until; await Task.Delay(50))
        {
            using var list = await fx.Http.SendAsync(Http.Get("/v1/requests", GatewayFixture.AliceKey));
            listed = await list.Content.ReadAsStringAsync();
            if (!listed.Contains(id)) break;
        }
        Assert.DoesNotContain(id, listed);
    }
}
