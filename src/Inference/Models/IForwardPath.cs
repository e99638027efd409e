namespace ProxyOrleans.Inference.Models;

/// <summary>
/// One way of running the transformer over the rows of a step. Session i appends counts[i] tokens (taken in order
/// from tokens) at positions Length..Length+counts[i]-1 and gets the logits of its last position in row i of logits.
/// The caller has checked the inputs and reserved cache room, and advances each session's Length afterwards.
/// With everyPosition (one session only) every appended row gets its logits: row r of logits for tokens[r].
/// </summary>
internal interface IForwardPath : IDisposable
{
    void Run(KvCacheSession[] sessions, ReadOnlySpan<int> tokens, int[] counts, Span<float> logits, bool everyPosition = false);
}
