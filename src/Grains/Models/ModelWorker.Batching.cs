using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace ProxyOrleans.Grains.Models;

// The worker's one loop over its model: the queue of prefills, steps and frees, the short window that gathers the
// waiting sessions' steps into one StepBatch, and the forwards themselves. The sessions, their KV reservations and
// their lifetimes are in ModelWorker.cs.
public sealed partial class ModelWorker
{
    private async Task RunAsync()
    {
        var reader = _queue.Reader;
        var batch = new List<Work>(_maxBatch);
        var deferred = new Queue<Work>();
        var lastBatch = new List<Session>(_maxBatch); // sessions of the last decode batch: expected again in the next
        while (true)
        {
            if (deferred.Count == 0 && !await reader.WaitToReadAsync().ConfigureAwait(false)) return;
            batch.Clear();
            while (deferred.TryDequeue(out var d)) batch.Add(d);
            while (batch.Count < _maxBatch && reader.TryRead(out var w)) batch.Add(w);
            // Wait a short window for the sessions of the previous batch that have not sent their next step yet: each
            // step makes a round trip through its coordinator, so without waiting the first returning session starts a
            // small batch and the rest form the next one (the batch splits into cohorts that alternate, each session
            // then advancing every other forward). Sleeps on the queue, no spinning.
            if (_batchWindow > TimeSpan.Zero && batch.Count > 0 && batch.All(w => !w.Prefill && !w.Free) && lastBatch.Count > 0)
            {
                long deadline = Stopwatch.GetTimestamp() + (long)(_batchWindow.TotalSeconds * Stopwatch.Frequency);
                while (batch.Count < _maxBatch && lastBatch.Any(s => !s.Closed && !batch.Any(w => ReferenceEquals(w.Session, s))))
                {
                    var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
                    if (left <= TimeSpan.Zero) { WindowTimeouts++; break; }
                    if (!reader.TryRead(out var w))
                    {
                        using var timeout = new CancellationTokenSource(left);
                        try { if (!await reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false)) break; }
                        catch (OperationCanceledException) { WindowTimeouts++; break; }
                        continue;
                    }
                    batch.Add(w);
                    if (w.Prefill || w.Free) break; // run what is there; the prefill goes first
                }
            }
            var steps = new List<Work>();
            foreach (var w in batch)
            {
                if (w.Free) { w.Session.Release(this); continue; }
                if (w.Session.Closed && !w.Prefill) { w.Result.TrySetException(new SessionNotFoundException($"Session '{w.Session.Id}' was closed.")); continue; }
                if (w.Prefill) { RunPrefill(w); continue; }
                if (steps.Any(s => ReferenceEquals(s.Session, w.Session))) { deferred.Enqueue(w); continue; }
                steps.Add(w);
            }
            if (steps.Count > 0)
            {
                RunSteps(steps);
                lastBatch.Clear();
                foreach (var w in steps) lastBatch.Add(w.Session);
            }
        }
    }

    private float[] _batchLogits = [];

    private void RunPrefill(Work w)
    {
        try
        {
            var sw = Stopwatch.StartNew();
            float[] logits;
            if (w.EveryPosition) w.Session.Inner!.AppendScoringEveryPosition(w.Tokens, logits = new float[w.Tokens.Length * _model.VocabSize]);
            else w.Session.Inner!.Append(w.Tokens, logits = new float[_model.VocabSize]);
            w.ModelMs = sw.Elapsed.TotalMilliseconds;
            ComputeMs += w.ModelMs;
            Prefills++;
            w.Result.TrySetResult(logits);
        }
        catch (Exception e) { w.Result.TrySetException(e); }
    }

    private void RunSteps(List<Work> steps)
    {
        try
        {
            var sw = Stopwatch.StartNew();
            int v = _model.VocabSize;
            // One batch buffer for the worker's life and one row per session: 8 MiB per forward at 64 rows of a 32k
            // vocabulary, and 128 KiB per step, were large-object allocations that kept the background GC busy.
            int need = steps.Count * v;
            if (_batchLogits.Length < need) _batchLogits = GC.AllocateUninitializedArray<float>(need); // StepBatch writes every row
            var all = _batchLogits.AsSpan(0, need);
            var tokens = steps.Select(s => s.Tokens[0]).ToArray();
            _model.StepBatch(steps.Select(s => s.Session.Inner!).ToList(), tokens, all);
            double ms = sw.Elapsed.TotalMilliseconds;
            ComputeMs += ms;
            Steps += steps.Count;
            Batches++;
            // Each session's row into the session's own buffer: valid until the session's next step (a coordinator
            // reads a step's logits before it asks for the next), and for fp32 already the wire bytes.
            for (int i = 0; i < steps.Count; i++)
            {
                var row = steps[i].Session.Row ??= new FloatBytes(v);
                all.Slice(i * v, v).CopyTo(row.GetSpan());
                steps[i].ModelMs = ms;
                steps[i].Result.TrySetResult(row.Memory);
            }
        }
        catch (Exception e) when (steps.Count > 1)
        {
            // One bad row must not fail every session of the batch (other tenants' included): the model checks every
            // session before writing any cache, so each is run again alone and only the failing one fails.
            _log.LogWarning(e, "Model {Model}: a batch of {Count} steps failed; running them one by one", Name, steps.Count);
            foreach (var s in steps) RunSteps([s]);
        }
        catch (Exception e)
        {
            foreach (var s in steps) s.Result.TrySetException(e);
        }
    }

    private sealed class Work(Session session, int[] tokens, bool prefill)
    {
        public Session Session { get; } = session;
        public int[] Tokens { get; } = tokens;
        public bool Prefill { get; } = prefill;
        public bool Free { get; init; }
        /// <summary>A prefill that returns the logits of every position (prompt scoring), not just the last.</summary>
        public bool EveryPosition { get; init; }
        public double ModelMs;
        public TaskCompletionSource<ReadOnlyMemory<float>> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
