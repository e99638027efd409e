namespace ProxyOrleans.Inference.Tokenization;

/// <summary>
/// What SentencePiece and byte-level BPE tokenizers share: added/special tokens cut out of the text first
/// (as HF does), BOS handling, special-token skipping on decode, the id-to-token table and the chat template.
/// </summary>
public abstract class TextTokenizerBase : ITextTokenizer
{
    private readonly AddedTokens added = new();
    private readonly Lazy<IChatTemplate?> chatTemplate;
    private Dictionary<string, int>? vocabulary;

    private protected TextTokenizerBase(Func<ITextTokenizer, IChatTemplate?>? chatTemplateFactory)
    {
        chatTemplate = new Lazy<IChatTemplate?>(() => chatTemplateFactory?.Invoke(this));
    }

    /// <summary>"sentencepiece" or "bpe".</summary>
    public abstract string Kind { get; }
    public int VocabSize { get; private set; }
    public int? BosTokenId { get; private set; }
    public int? EosTokenId { get; private set; }
    public int? UnknownTokenId { get; private set; }
    /// <summary>Whether the model's tokenizer puts BOS in front of a text (HF add_special_tokens=True).</summary>
    public bool AddBosToken { get; private set; }
    public IReadOnlyCollection<int> EosTokenIds { get; private set; } = [];
    public IReadOnlyCollection<AddedToken> AddedTokens => added.All;

    /// <summary>
    /// The chat template. Throws <see cref="InvalidDataException"/> naming the fix when tokenizer_config.json holds a
    /// template of an unknown family and none was configured (so models that never chat still load).
    /// </summary>
    public IChatTemplate? ChatTemplate => chatTemplate.Value;

    /// <summary>Every token string with its id, added tokens included.</summary>
    public IReadOnlyDictionary<string, int> Vocabulary => vocabulary ??= BuildVocabulary();

    private protected void AddAddedToken(AddedToken token) => added.Add(token);
    private protected bool TryGetAdded(string content, out AddedToken token) => added.TryGet(content, out token);

    /// <summary>Sets ids once the model's vocabulary and added tokens are known.</summary>
    private protected void SetSpecialIds(int modelVocabSize, int? bos, int? eos, int? unk, bool addBos, IEnumerable<int> extraEos)
    {
        VocabSize = Math.Max(modelVocabSize, added.MaxId + 1);
        BosTokenId = bos;
        EosTokenId = eos;
        UnknownTokenId = unk;
        AddBosToken = addBos && bos is not null;
        var eosIds = new List<int>();
        if (eos is int e) eosIds.Add(e);
        foreach (int id in extraEos) if (!eosIds.Contains(id)) eosIds.Add(id);
        EosTokenIds = eosIds;
    }

    public int[] Encode(string text, bool addBos = true, bool parseSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 2);
        if (addBos && AddBosToken) ids.Add(BosTokenId!.Value);
        foreach (var (part, id) in added.Split(text, parseSpecialTokens))
        {
            if (id is int addedId) ids.Add(addedId);
            else EncodePlain(part, ids);
        }
        return ids.ToArray();
    }

    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = true)
    {
        var text = new System.Text.StringBuilder();
        var run = new List<int>();
        bool atStart = true;
        foreach (int id in ids)
        {
            if (id < 0 || id >= VocabSize)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token id {id} is outside the vocabulary (0..{VocabSize - 1}).");
            if (added.TryGet(id, out var token))
            {
                if (skipSpecialTokens && token.Special) continue;
                if (AddedTokensThroughDecoder) { run.Add(id); continue; }
                if (run.Count > 0) { text.Append(DecodePlain(run, atStart)); run.Clear(); }
                text.Append(token.Content);
                atStart = false;
            }
            else run.Add(id);
        }
        if (run.Count > 0) text.Append(DecodePlain(run, atStart));
        return text.ToString();
    }

    public string? IdToToken(int id) =>
        added.TryGet(id, out var token) ? token.Content : ModelIdToToken(id);

    /// <summary>
    /// Whether kept added tokens go through <see cref="DecodePlain"/> with the text around them, as HF's decoder chain
    /// sees every token (Gemma's "▁▁" added tokens decode to spaces); otherwise their content is written as is.
    /// </summary>
    private protected virtual bool AddedTokensThroughDecoder => false;

    /// <summary>Encodes text that holds no added tokens, appending ids.</summary>
    private protected abstract void EncodePlain(string text, List<int> output);

    /// <summary>Decodes ids that hold no added tokens; <paramref name="atStart"/>: first piece of the whole text.</summary>
    private protected abstract string DecodePlain(List<int> ids, bool atStart);

    private protected abstract string? ModelIdToToken(int id);

    private Dictionary<string, int> BuildVocabulary()
    {
        var map = new Dictionary<string, int>(VocabSize, StringComparer.Ordinal);
        for (int id = 0; id < VocabSize; id++)
            if (IdToToken(id) is string token) map.TryAdd(token, id);
        return map;
    }

    // Resolves a token string from the config files to its id, or null when absent.
    private protected int? IdOf(string? token, Func<string, int?> modelLookup) =>
        token is null ? null : added.TryGet(token, out var t) ? t.Id : modelLookup(token);
}
