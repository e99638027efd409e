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
        var response = await fx.Http.SendAsync(Http.Post("/v1/chat/completions",
            JsonSerializer.Serialize(new
            {
                model = fx.Combination, max_tokens = fx.LongMaxTokens, temperature = 0, stream = true,
                messages = new[] { new { role = "user", content = "Tell a very long story" } },
            }), GatewayFixture.AliceKey), HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var id = response.Headers.GetValues("x-request-id").Single();
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
        Assert.StartsWith("data: ", await reader.ReadLineAsync(cts.Token));

        // Hang up mid-stream.
        cts.Cancel();
        response.Dispose();

        // The coordinator reports the generation cancelled, well before max_tokens.
        var finished = await events.WaitForAsync(e => e.RequestId.Contains(id) && e.Kind == GenerationEventKind.Finished, TimeSpan.FromSeconds(30));
        Assert.Equal(FinishKind.Cancelled, finished.Finish);
        Assert.True(finished.Step < fx.LongMaxTokens - 1, $"stopped at step {finished.Step} of {fx.LongMaxTokens}");

        // And the gateway no longer lists it.
        using var list = await fx.Http.SendAsync(Http.Get("/v1/requests", GatewayFixture.AliceKey));
        Assert.DoesNotContain(id, await list.Content.ReadAsStringAsync());
    }
}
