namespace ProxyOrleans.Inference.Tokenization;

/// <summary>
/// Turns generated ids into text as they arrive. Decoding one token at a time loses SentencePiece's leading
/// space and cuts UTF-8 characters that span byte tokens, so this decodes a window that starts a few tokens
/// back (prompt tokens at first), emits what the new token added, and holds text back while it ends in
/// U+FFFD (an incomplete character). The emitted pieces concatenate to Decode(prompt + generated) minus
/// Decode(prompt), when prompt is given.
/// </summary>
public sealed class StreamingDetokenizer
{
    private readonly ITextTokenizer tokenizer;
    private readonly bool skipSpecialTokens;
    private readonly List<int> ids = new();
    private int prefixOffset; // window start: tokens decoded only as context
    private int readOffset;   // tokens before this were already emitted
    private readonly System.Text.StringBuilder emitted = new();

    /// <param name="tokenizer">The model's tokenizer.</param>
    /// <param name="promptIds">The prompt (or its last few tokens): context so that the first token keeps its space.</param>
    /// <param name="skipSpecialTokens">Whether special tokens (EOS...) are left out of the text.</param>
    public StreamingDetokenizer(ITextTokenizer tokenizer, ReadOnlySpan<int> promptIds = default, bool skipSpecialTokens = true)
    {
        this.tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        this.skipSpecialTokens = skipSpecialTokens;
        // A few tokens of context are enough for spaces; more only costs decode time.
        const int context = 4;
        ids.AddRange(promptIds[Math.Max(0, promptIds.Length - context)..].ToArray());
        readOffset = ids.Count;
    }

    /// <summary>All text emitted so far.</summary>
    public string Text => emitted.ToString();

    /// <summary>Adds a generated id; returns the text it completes (empty while a character is incomplete).</summary>
    public string Push(int id)
    {
        ids.Add(id);
        return Emit(final: false);
    }

    /// <summary>Emits whatever is held back (an incomplete character shows as U+FFFD). Call at the end.</summary>
    public string Flush() => Emit(final: true);

    private string Emit(bool final)
    {
        if (readOffset == ids.Count) return "";
        var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(ids);
        string prefixText = tokenizer.Decode(span[prefixOffset..readOffset], skipSpecialTokens);
        string newText = tokenizer.Decode(span[prefixOffset..], skipSpecialTokens);
        if (!final && (newText.Length <= prefixText.Length || newText[^1] == '\uFFFD')) return "";
        // The window's text grows at its end only (same tokens, decoded the same way), so the new part is the tail.
        string delta = newText.Length > prefixText.Length ? newText[prefixText.Length..] : "";
        prefixOffset = readOffset;
        readOffset = ids.Count;
        emitted.Append(delta);
        return delta;
    }
}
