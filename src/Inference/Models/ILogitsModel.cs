namespace ProxyOrleans.Inference.Models;

/// <summary>
/// A loaded causal language model as the decoders and grains see it: sessions with their own KV cache,
/// fed tokens, answering with next-token logits. Implementations own native memory: dispose them.
/// </summary>
public interface ILogitsModel : IDisposable
{
    /// <summary>Name the model was loaded under (e.g. "base-large").</summary>
    string Name { get; }

    /// <summary>Length of every logits vector this model returns (the head's rows, config vocab_size).</summary>
    int VocabSize { get; }

    /// <summary>Longest sequence (prompt plus generated tokens) a session may hold: max_position_embeddings.</summary>
    int MaxSequenceLength { get; }

    /// <summary>Bytes of KV cache one token occupies; grains budget their memory with it.</summary>
    long KvBytesPerToken { get; }

    /// <summary>A fresh session (empty KV cache) able to hold up to <paramref name="capacity"/> tokens.</summary>
    IModelSession CreateSession(int capacity);

    /// <summary>
    /// Appends one token to each session and writes each session's next-token logits to its row of
    /// <paramref name="logits"/> (length sessions.Count * VocabSize). Sessions are run as one batch where
    /// that is faster; the result equals calling <see cref="IModelSession.Append"/> on each in turn (bit for bit with
    /// <see cref="InferenceOptions.BatchInvariant"/>, to rounding without it).
    /// </summary>
    void StepBatch(IReadOnlyList<IModelSession> sessions, ReadOnlySpan<int> tokens, Span<float> logits);
}

/// <summary>One sequence's state inside a model: its KV cache and position.</summary>
public interface IModelSession : IDisposable
{
    /// <summary>Tokens held in the cache so far.</summary>
    int Length { get; }

    /// <summary>
    /// Appends <paramref name="tokens"/> (a whole prompt, a chunk, or one token) and writes the logits of the
    /// last appended position into <paramref name="lastLogits"/> (VocabSize floats).
    /// Throws <see cref="ContextLengthExceededException"/> when the tokens would not fit.
    /// </summary>
    void Append(ReadOnlySpan<int> tokens, Span<float> lastLogits);

    /// <summary>
    /// <see cref="Append"/>, but writing the logits of every appended position: row t of
    /// <paramref name="logitsPerPosition"/> (tokens.Length × VocabSize floats) scores the token after tokens[t]. For
    /// prompt log-probabilities (echo) only: the lm_head over every row costs tokens.Length × VocabSize, which a plain
    /// prefill does not pay. The last row equals what <see cref="Append"/> writes (bit for bit on the batch-invariant path).
    /// </summary>
    void AppendScoringEveryPosition(ReadOnlySpan<int> tokens, Span<float> logitsPerPosition);
}

public sealed class ContextLengthExceededException(string message) : InvalidOperationException(message);
