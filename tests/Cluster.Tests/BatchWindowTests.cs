using System.Diagnostics;
using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Models;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>ProxyOrleans:BatchWindowMs: a model waits for the sessions of its previous batch, and only for those.</summary>
public sealed class BatchWindowTests(ITestOutputHelper output)
{
    [Fact]
    public async Task StragglersOfThePreviousBatchJoinItAndAnIdleSessionHoldsNothingUp()
    {
        var plain = TinyTrio.LoadBase("window");
        // A simulated 5 ms forward, so that a step that comes 1 ms late finds the batch already running.
        var loaded = new LoadedModel(plain.Name, plain.Directory, new AcceleratorLatencyModel(plain.Model, AcceleratorLatencyProfile.Parse("fixed=5")), plain.Tokenizer, plain.Config);
        using var worker = TinyTrio.Worker(loaded, TimeSpan.FromMilliseconds(30));
        var prompt = worker.Tokenize(new ProxyOrleans.Abstractions.OpenSessionRequest { SessionId = "window", Prompt = "Hello world" });
        foreach (var s in new[] { "a", "b", "idle" }) await worker.OpenAsync(s, prompt, [], 64);

        const int warmup = 3, steps = 20;
        long batchesBefore = 0, timeoutsBefore = 0;
        var sw = new Stopwatch();
        for (int step = 1; step <= warmup + steps; step++)
        {
            if (step == warmup + 1) { batchesBefore = worker.Batches; timeoutsBefore = worker.WindowTimeouts; sw.Start(); } // the first forwards compile the batch path
            var a = worker.StepAsync("a", step, 5);
            await Task.Delay(1); // b's coordinator is a little slower, as when it waited for another model
            var b = worker.StepAsync("b", step, 6);
            await Task.WhenAll(a, b);
        }
        double msPerStep = sw.Elapsed.TotalMilliseconds / steps;
        long batches = worker.Batches - batchesBefore;
        output.WriteLine($"{batches} batches for {steps} steps of 2 sessions, {msPerStep:F1} ms per step (forward 5 ms, window 30 ms)");
        // Without waiting, a ran alone and b in the next batch: 2 batches per step.
        Assert.True(batches <= steps + 3, $"{batches} batches for {steps} steps: b's late steps did not join a's batch");
        // The idle session is not expected (it was in no batch): waiting for it would run out the window at every step.
        // Counted rather than timed: on a loaded host some runs took ~40 ms per step with no window run out at all.
        long timeouts = worker.WindowTimeouts - timeoutsBefore;
        Assert.True(timeouts <= 3, $"{timeouts} of {batches} batches waited the whole window ({msPerStep:F1} ms per step): the model waited for a session that was not stepping");
    }
}
