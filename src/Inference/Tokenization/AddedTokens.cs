namespace ProxyOrleans.Inference.Tokenization;

/// <summary>A token matched as a whole in the text before the model sees it (HF "added_tokens").</summary>
public sealed record AddedToken(int Id, string Content, bool Special);

/// <summary>
/// HF's added-token handling: text is cut at added tokens first and only the pieces between them go through
/// the model (SentencePiece or BPE). Special tokens are cut only when asked; non-special added tokens always.
/// </summary>
internal sealed class AddedTokens
{
    private readonly Dictionary<int, AddedToken> byId = new();
    private readonly Dictionary<string, AddedToken> byContent = new(StringComparer.Ordinal);
    // Candidates by first character, longest first, so scanning a long prompt stays cheap.
    // Built on first use after a change: Gemma 3 adds thousands of tokens one by one.
    private Dictionary<char, AddedToken[]>? byFirstChar;

    public IReadOnlyCollection<AddedToken> All => byId.Values;

    public void Add(AddedToken token)
    {
        if (token.Content.Length == 0) return;
        if (byContent.TryGetValue(token.Content, out var existing) && existing.Id != token.Id)
            throw new InvalidDataException($"Added token '{token.Content}' is listed with two ids ({existing.Id} and {token.Id}).");
        byId[token.Id] = token;
        byContent[token.Content] = token;
        byFirstChar = null;
    }

    public bool TryGet(int id, out AddedToken token) => byId.TryGetValue(id, out token!);
    public bool TryGet(string content, out AddedToken token) => byContent.TryGetValue(content, out token!);
    public bool IsSpecial(int id) => byId.TryGetValue(id, out var t) && t.Special;
    public int MaxId => byId.Count == 0 ? -1 : byId.Keys.Max();

    /// <summary>Splits text into plain pieces (Id null) and matched added tokens, leftmost-longest first.</summary>
    public List<(string Text, int? Id)> Split(string text, bool includeSpecial)
    {
        var index = byFirstChar ??= byContent.Values.GroupBy(t => t.Content[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ThenBy(t => t.Id).ToArray());
        var parts = new List<(string, int?)>();
        int plainStart = 0, i = 0;
        while (i < text.Length)
        {
            AddedToken? match = null;
            foreach (var t in index.GetValueOrDefault(text[i], []))
            {
                if ((includeSpecial || !t.Special) && string.CompareOrdinal(text, i, t.Content, 0, t.Content.Length) == 0)
                {
                    match = t;
                    break;
                }
            }
            if (match is null) { i++; continue; }
            if (i > plainStart) parts.Add((text[plainStart..i], null));
            parts.Add((match.Content, match.Id));
            i += match.Content.Length;
            plainStart = i;
        }
        if (plainStart < text.Length) parts.Add((text[plainStart..], null));
        return parts;
    }
}
