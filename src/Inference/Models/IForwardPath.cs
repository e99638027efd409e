namespace ProxyOrleans.Inference.Models;

/// <summary>
/// One way of running the transformer over the rows of a step. Session i appends counts[i] tokens (taken in order
/// from tokens) at positions Length..Length+counts[i]-1 and gets the logits of its last position in row i of logits.
/// The caller has checked the inputs and reserved cache room, and advances each session's Length afterwards.
/// </summary>
internal interface IForwardPath : IDisposable
{
    void Run(KvCacheSession[] sessions, ReadOnlySpan<int> tokens, int[] counts, Span<float> logits);
}
