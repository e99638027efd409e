using ProxyOrleans.Grains.Models;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>A model worker reuses its batch buffer and one logits row per session instead of allocating them per step.</summary>
public sealed class ModelWorkerBufferTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Steps_allocate_no_logits_rows_and_each_session_keeps_its_own_row_until_its_next_step()
    {
        using var worker = TinyTrio.Worker(TinyTrio.LoadBase("buffers"), TimeSpan.Zero);
        var prompt = worker.Tokenize(new ProxyOrleans.Abstractions.OpenSessionRequest { SessionId = "buffers", Prompt = "Hello world" });
        string[] sessions = ["a", "b", "c", "d"];
        foreach (var s in sessions) await worker.OpenAsync(s, prompt, [], 64);

        async Task<ReadOnlyMemory<float>[]> StepAll(int step) =>
            [.. (await Task.WhenAll(sessions.Select((s, i) => worker.StepAsync(s, step, 5 + i)))).Select(r => r.Logits)];

        for (int step = 1; step <= 3; step++) await StepAll(step); // the first steps allocate the rows and compile
        const int steps = 10;
        long before = GC.GetTotalAllocatedBytes(precise: true);
        for (int step = 4; step < 4 + steps; step++) await StepAll(step);
        double perStep = (GC.GetTotalAllocatedBytes(precise: true) - before) / (double)(steps * sessions.Length);
        int rowBytes = worker.VocabSize * sizeof(float);
        output.WriteLine($"{perStep:F0} bytes allocated per session step (a logits row is {rowBytes})");
        // Before: a batch array (rows × 128 KiB) per forward and the row's copy for the wire per step.
        Assert.True(perStep < rowBytes / 4.0, $"{perStep:F0} bytes per step: a logits row ({rowBytes} bytes) is still allocated per step");

        // Sessions of one batch get separate rows, and a session's row holds its step's logits while the others step.
        var rows = await StepAll(4 + steps);
        var a = rows[0].ToArray();
        Assert.False(rows[0].Span.SequenceEqual(rows[1].Span));
        await Task.WhenAll(sessions.Skip(1).Select((s, i) => worker.StepAsync(s, 5 + steps, 9 + i)));
        Assert.True(rows[0].Span.SequenceEqual(a));
        var (retried, _) = await worker.StepAsync("a", 4 + steps, 5); // a retried step: the same logits
        Assert.True(retried.Span.SequenceEqual(a));
        // fp32 rows are their own wire bytes (a single model's answer sends them without a copy).
        Assert.True(LogitsCodec.TryGetWireBytes(retried, out var wire));
        Assert.Equal(rowBytes, wire.Length);
        Assert.False(LogitsCodec.TryGetWireBytes(retried[1..], out _));
    }
}
