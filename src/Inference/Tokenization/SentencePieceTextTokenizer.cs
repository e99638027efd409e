using Microsoft.ML.Tokenizers;

namespace ProxyOrleans.Inference.Tokenization;

/// <summary>
/// SentencePiece BPE from a <c>tokenizer.model</c> (Llama 2, Mistral) through Microsoft.ML.Tokenizers'
/// LlamaTokenizer. Added tokens are cut out first and each piece between them gets SentencePiece's dummy
/// "▁" prefix, as HF's (legacy) Llama tokenizer does: "&lt;s&gt;[INST]" encodes as [1, 518 "▁[", ...].
/// </summary>
public sealed class SentencePieceTextTokenizer : TextTokenizerBase
{
    private readonly SentencePieceTokenizer sp;
    private readonly string?[] pieces;

    public override string Kind => "sentencepiece";

    /// <param name="modelStream">The tokenizer.model protobuf.</param>
    /// <param name="config">tokenizer_config.json / config.json facts (add_bos_token, added tokens, extra EOS ids).</param>
    /// <param name="chatTemplateFactory">Builds the chat template once the tokenizer exists (see <see cref="ChatTemplates"/>).</param>
    public SentencePieceTextTokenizer(Stream modelStream, TokenizerConfig? config = null,
        Func<ITextTokenizer, IChatTemplate?>? chatTemplateFactory = null) : base(chatTemplateFactory)
    {
        config ??= new TokenizerConfig();
        sp = LlamaTokenizer.Create(modelStream, addBeginOfSentence: false, addEndOfSentence: false, specialTokens: null);

        pieces = new string?[sp.Vocabulary.Count == 0 ? 0 : sp.Vocabulary.Values.Max() + 1];
        foreach (var (piece, id) in sp.Vocabulary) pieces[id] = piece;

        // SentencePiece's control tokens behave as HF's special added tokens.
        AddAddedToken(new AddedToken(sp.UnknownId, sp.UnknownToken, true));
        AddAddedToken(new AddedToken(sp.BeginningOfSentenceId, sp.BeginningOfSentenceToken, true));
        AddAddedToken(new AddedToken(sp.EndOfSentenceId, sp.EndOfSentenceToken, true));
        foreach (var t in config.AddedTokens) AddAddedToken(t);

        int? bos = IdOf(config.BosToken, PieceId) ?? sp.BeginningOfSentenceId;
        int? eos = IdOf(config.EosToken, PieceId) ?? sp.EndOfSentenceId;
        SetSpecialIds(pieces.Length, bos, eos, sp.UnknownId, config.AddBosToken ?? true, config.ConfigEosTokenIds);
    }

    public static SentencePieceTextTokenizer FromFile(string path, TokenizerConfig? config = null,
        Func<ITextTokenizer, IChatTemplate?>? chatTemplateFactory = null)
    {
        using var stream = File.OpenRead(path);
        try
        {
            return new SentencePieceTextTokenizer(stream, config, chatTemplateFactory);
        }
        catch (Exception e) // protobuf parse errors derive from IOException: the file is open already, so all are content errors
        {
            throw new InvalidDataException(
                $"{path} is not a SentencePiece BPE model that can be read ({e.Message}). Replace it with the tokenizer.model " +
                "from the model's Hugging Face repository, or remove it so that tokenizer.json is used.", e);
        }
    }

    private int? PieceId(string piece) => sp.Vocabulary.TryGetValue(piece, out int id) ? id : null;

    private protected override void EncodePlain(string text, List<int> output)
    {
        if (text.Length == 0) return;
        output.AddRange(sp.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false));
    }

    private protected override string DecodePlain(List<int> ids, bool atStart)
    {
        string text = sp.Decode(ids, considerSpecialTokens: false);
        // SentencePiece drops the space of a leading "▁" (the dummy prefix); HF keeps it after an added token.
        if (!atStart && ids.Count > 0 && pieces[ids[0]] is string first && first.StartsWith('▁'))
            text = " " + text;
        return text;
    }

    private protected override string? ModelIdToToken(int id) => id >= 0 && id < pieces.Length ? pieces[id] : null;
}
