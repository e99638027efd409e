using System.Diagnostics;
using Orleans.Streams;
using ProxyOrleans.Abstractions;
using ProxyOrleans.Inference.Decoding;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Cluster.Tests;

public sealed class SessionTests(TrioClusterFixture fixture, ITestOutputHelper output) : IClassFixture<TrioClusterFixture>
{
    /// <summary>KV bytes reserved by every model worker of every silo of the fixture's cluster.</summary>
    private long ReservedBytes() => Enumerable.Range(0, fixture.Cluster.Cluster.Silos.Count)
        .Sum(i => fixture.Cluster.Hosted(i).Workers.Sum(w => w.ReservedBytes));

    [Fact]
    public async Task ACallerThatVanishesWithoutDisposingHasItsSessionsFreedWhenItsConsumerLeaseLapses()
    {
        const double lease = 1;
        var settle = Stopwatch.StartNew();
        while (ReservedBytes() != 0 && settle.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(20); // other tests' sessions
        Assert.Equal(0, ReservedBytes());
        // Straight to the grain, as a gateway process killed mid-stream leaves it: nobody renews, pulls or disposes.
        var grain = fixture.Cluster.Grains.GetGrain<IGenerationGrain>(GenerationKeys.Create(TinyTrio.Base, "vanished-caller"));
        var events = grain.Generate(TinyTrio.Request("Once upon a time", 200) with { ConsumerLeaseSeconds = lease }).GetAsyncEnumerator();
        try
        {
            Assert.True(await events.MoveNextAsync());
            Assert.True(await events.MoveNextAsync());
            var held = ReservedBytes();
            Assert.True(held > 0, "the running generation holds no KV: the check below would prove nothing.");
            var abandoned = Stopwatch.StartNew();
            while (ReservedBytes() > 0 && abandoned.Elapsed < TimeSpan.FromSeconds(20)) await Task.Delay(20);
            output.WriteLine($"{held} KV bytes {(ReservedBytes() == 0 ? "freed" : "still held")} {abandoned.Elapsed.TotalSeconds:F2} s after the caller stopped (lease {lease} s)");
            Assert.Equal(0, ReservedBytes());
            // Five checks per lease: freed at most 1.2 leases after the last pull, plus the close calls.
            Assert.True(abandoned.Elapsed.TotalSeconds <= lease * 1.2 + 1, $"freed only {abandoned.Elapsed.TotalSeconds:F2} s after the caller stopped (lease {lease} s)");
            // A caller that comes back after all finds its generation cancelled, not running on.
            var rest = new List<TokenEvent>();
            while (await events.MoveNextAsync()) rest.Add(events.Current);
            Assert.Equal(FinishKind.Cancelled, rest[^1].Finish);
            Assert.True(rest.Count < 5, $"{rest.Count} more events after the lapse");
        }
        finally { await events.DisposeAsync(); }
    }

    [Fact]
    public async Task AReaderSlowerThanItsLeaseKeepsTheGenerationAliveBecauseGenerationClientRenewsIt()
    {
        const double lease = 0.6;
        const string prompt = "Once upon a time";
        var tokens = new List<int>();
        var finish = FinishKind.None;
        await foreach (var ev in GenerationClient.StreamAsync(fixture.Cluster.Grains, TinyTrio.Request(prompt, 12) with { ConsumerLeaseSeconds = lease }, "slow-reader"))
        {
            if (ev.TokenId >= 0) tokens.Add(ev.TokenId);
            if (ev.Finish != FinishKind.None) { finish = ev.Finish; break; }
            if (tokens.Count == 3) await Task.Delay(TimeSpan.FromSeconds(lease * 4)); // pulls nothing for four leases
        }
        Assert.Equal(FinishKind.Length, finish);
        Assert.Equal(TinyTrio.Reference(prompt, 12).TokenIds, tokens);
    }

    [Fact]
    public async Task KvBudgetIsEnforcedWithAClearErrorAndFreedOnClose()
    {
        var loaded = TinyTrio.LoadBase("budget");
        // Room for one 100-token session only.
        using var worker = TinyTrio.Worker(loaded, TimeSpan.Zero, budgetBytes: 150 * loaded.Model.KvBytesPerToken);
        var prompt = worker.Tokenize(new OpenSessionRequest { SessionId = "s", Prompt = "Hello world" });
        await worker.OpenAsync("a", prompt, [], 96);
        var e = await Assert.ThrowsAsync<CapacityExceededException>(() => worker.OpenAsync("b", prompt, [], 96));
        Assert.Contains("budget", e.Message);
        Assert.Contains("KvBudgetMB", e.Message);
        worker.Close("a");
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (worker.ReservedBytes > 0 && DateTime.UtcNow < deadline) await Task.Delay(20);
        await worker.OpenAsync("b", prompt, [], 96); // the budget was given back
        Assert.Equal(1, worker.ActiveSessions);
    }

    [Fact]
    public async Task AFailingRowFailsOnlyItsOwnSessionWhichIsClosedAndFreed()
    {
        var loaded = TinyTrio.LoadBase("fault");
        // A wide batch window so that both steps below run as one batch.
        using var worker = TinyTrio.Worker(loaded, TimeSpan.FromMilliseconds(500));
        var prompt = worker.Tokenize(new OpenSessionRequest { SessionId = "s", Prompt = "Hello world" });
        // "full" has room for one generated token only: its second step cannot fit (the forward throws for its row).
        await worker.OpenAsync("full", prompt, [], 1);
        await worker.OpenAsync("other", prompt, [], 8);
        long otherBytes = (prompt.Length + 8) * worker.KvBytesPerToken;
        await Task.WhenAll(worker.StepAsync("full", 1, 5), worker.StepAsync("other", 1, 5));
        long batches = worker.Batches;

        var failing = worker.StepAsync("full", 2, 6);
        var fine = worker.StepAsync("other", 2, 6);
        var (logits, _) = await fine;                       // the other tenant's session is unaffected
        Assert.Equal(worker.VocabSize, logits.Length);
        var fault = await Assert.ThrowsAsync<ModelFaultException>(() => failing);
        Assert.Contains("fault", fault.Message);
        Assert.True(worker.Batches > batches);

        // The failed session is gone (a retry is told to re-open, not handed the same fault) and its KV is freed.
        Assert.False(worker.IsOpen("full"));
        await Assert.ThrowsAsync<SessionNotFoundException>(() => worker.StepAsync("full", 2, 6));
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (worker.ReservedBytes != otherBytes && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal(otherBytes, worker.ReservedBytes);

        // A token outside the vocabulary is refused before any forward; the session stays usable.
        await Assert.ThrowsAsync<InvalidRequestException>(() => worker.StepAsync("other", 3, worker.VocabSize + 7));
        await worker.StepAsync("other", 3, 7);
        worker.Close("other");
        deadline = DateTime.UtcNow.AddSeconds(5);
        while (worker.ReservedBytes != 0 && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal(0, worker.ReservedBytes);
    }

    [Fact]
    public async Task OnlyTheOwningTenantCanCancelAndCancellingEndsWithACancelledEvent()
    {
        var grain = fixture.Cluster.Grains.GetGrain<IGenerationGrain>(GenerationKeys.Create(TinyTrio.Base, "tenant-cancel"));
        var request = TinyTrio.Request("Once upon a time", 200) with { TenantId = "alice" };
        var events = new List<TokenEvent>();
        await foreach (var ev in grain.Generate(request))
        {
            events.Add(ev);
            if (events.Count == 2)
            {
                await Assert.ThrowsAsync<AccessDeniedException>(() => grain.Cancel("mallory"));
                await grain.Cancel("alice");
            }
        }
        Assert.Equal(FinishKind.Cancelled, events[^1].Finish);
        Assert.True(events.Count < 50);
    }

    [Theory]
    [InlineData(true)]   // the caller cancels its token (GenerationClient, as the gateway does on a disconnect)
    [InlineData(false)]  // the caller just stops reading and disposes the enumeration
    public async Task ACallerThatStopsEndsTheGenerationAsCancelledOnTheEventStream(bool viaToken)
    {
        var client = (IClusterClient)fixture.Cluster.Grains;
        var id = viaToken ? "stop-token" : "stop-dispose";
        var finished = new TaskCompletionSource<GenerationEvent>();
        var stream = client.GetStreamProvider(StreamNames.Provider)
            .GetStream<GenerationEvent>(StreamId.Create(StreamNames.GenerationEvents, StreamNames.AllTenants));
        var handle = await stream.SubscribeAsync((e, _) =>
        {
            if (e.RequestId.EndsWith(id) && e.Kind == GenerationEventKind.Finished) finished.TrySetResult(e);
            return Task.CompletedTask;
        });
        try
        {
            using var cts = new CancellationTokenSource();
            int seen = 0;
            try
            {
                await foreach (var ev in GenerationClient.StreamAsync(fixture.Cluster.Grains, TinyTrio.Request("Once upon a time", 200), id, cts.Token))
                {
                    if (ev.Finish != FinishKind.None) { Assert.Equal(FinishKind.Cancelled, ev.Finish); break; }
                    if (++seen == 3) { if (viaToken) cts.Cancel(); else break; }
                }
            }
            catch (OperationCanceledException) when (viaToken) { }
            var e = await finished.Task.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal(FinishKind.Cancelled, e.Finish);
            Assert.True(e.Step < 100, $"stopped at step {e.Step}");
        }
        finally { await handle.UnsubscribeAsync(); }
    }

    [Fact]
    public async Task ObserversSeeGenerationEventsOnOrleansStreams()
    {
        var client = (IClusterClient)fixture.Cluster.Grains;
        var received = new List<GenerationEvent>();
        var done = new TaskCompletionSource();
        var stream = client.GetStreamProvider(StreamNames.Provider)
            .GetStream<GenerationEvent>(StreamId.Create(StreamNames.GenerationEvents, StreamNames.AllTenants));
        var handle = await stream.SubscribeAsync((e, _) =>
        {
            lock (received) received.Add(e);
            if (e.RequestId.EndsWith("observed") && e.Kind == GenerationEventKind.Finished) done.TrySetResult();
            return Task.CompletedTask;
        });
        try
        {
            await TinyTrio.Collect(GenerationClient.StreamAsync(fixture.Cluster.Grains, TinyTrio.Request("Once upon a time", 6) with { TenantId = "bob" }, "observed"));
            await done.Task.WaitAsync(TimeSpan.FromSeconds(20));
            List<GenerationEvent> mine;
            lock (received) mine = received.Where(e => e.RequestId.EndsWith("observed")).ToList();
            Assert.Contains(mine, e => e.Kind == GenerationEventKind.Started);
            var finished = Assert.Single(mine, e => e.Kind == GenerationEventKind.Finished);
            Assert.Equal("bob", finished.TenantId);
            Assert.Equal(FinishKind.Length, finished.Finish);
            Assert.Equal(6, finished.Step);
        }
        finally { await handle.UnsubscribeAsync(); }
    }
}
