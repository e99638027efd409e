namespace ProxyOrleans.Inference.Tokenization;

/// <summary>A model's tokenizer as decoders, grains and tools see it (SentencePiece or byte-level BPE).</summary>
public interface ITextTokenizer
{
    /// <summary>Number of ids the tokenizer can produce, special and added tokens included.</summary>
    int VocabSize { get; }
    int? BosTokenId { get; }
    int? EosTokenId { get; }

    /// <summary>
    /// Text to ids. <paramref name="parseSpecialTokens"/>: whether special tokens written in the text ("&lt;s&gt;",
    /// "&lt;|im_start|&gt;") become their ids, as HF does for rendered chat templates; otherwise they stay plain text.
    /// </summary>
    int[] Encode(string text, bool addBos = true, bool parseSpecialTokens = false);

    /// <summary>Ids to text, keeping SentencePiece's spaces; special tokens dropped unless asked for.</summary>
    string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = true);

    /// <summary>The chat template from tokenizer_config.json or configuration; null when the model has none.</summary>
    IChatTemplate? ChatTemplate { get; }

    /// <summary>
    /// The vocabulary's string for an id ("▁Hello" in SentencePiece, "Ġworld" in byte-level BPE, "&lt;s&gt;");
    /// null when the id is outside the vocabulary. Used to check that models share one vocabulary.
    /// </summary>
    string? IdToToken(int id) => null;

    /// <summary>Every id that ends a generation: the EOS plus those listed in config.json / generation_config.json.</summary>
    IReadOnlyCollection<int> EosTokenIds => EosTokenId is int eos ? [eos] : [];
}

public sealed record ChatMessage(string Role, string Content);

/// <summary>Renders messages exactly as Hugging Face's Jinja template would, byte for byte.</summary>
public interface IChatTemplate
{
    /// <summary>"jinja" (the model's own template) or the configured family: "llama2", "llama3", "chatml".</summary>
    string Name { get; }

    string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true);

    /// <summary>The token that closes a turn ("&lt;/s&gt;", "&lt;|eot_id|&gt;", "&lt;|im_end|&gt;"): a chat model's stop token.</summary>
    string? EndOfTurnToken => null;
}
