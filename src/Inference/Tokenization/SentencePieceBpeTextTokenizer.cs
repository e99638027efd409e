using System.Text;
using System.Text.Json.Nodes;

namespace ProxyOrleans.Inference.Tokenization;

/// <summary>
/// SentencePiece-style BPE from a Hugging Face <c>tokenizer.json</c> (model BPE with byte_fallback: Llama 2,
/// Gemma 3, Mistral), for model directories without tokenizer.model. Pipeline as in HF tokenizers: added tokens
/// cut out, the normalizer (Prepend "▁", Replace " " with "▁"), the optional Split pre-tokenizer, then per piece
/// BPE over characters by merge rank, a character outside the vocabulary becoming its UTF-8 byte tokens
/// (&lt;0xE2&gt;...). Decoding is the decoder chain: Replace "▁" with " ", ByteFallback, Fuse, Strip.
/// </summary>
public sealed class SentencePieceBpeTextTokenizer : TextTokenizerBase
{
    private readonly Dictionary<string, int> vocab;
    private readonly string?[] tokens;
    private readonly Dictionary<(int Left, int Right), (int Rank, int Merged)> merges;
    private readonly List<Func<string, string>> normalizers;
    private readonly string? splitOn; // Split pre-tokenizer, MergedWithPrevious: the delimiter ends its piece
    private readonly int[] byteIds = new int[256];
    private readonly string decodeSpace; // the Replace decoder's pattern ("▁")
    private readonly int stripStart;     // the Strip decoder: leading spaces removed from the decoded text

    public override string Kind => "sentencepiece-bpe";

    private SentencePieceBpeTextTokenizer(Dictionary<string, int> vocab, List<(string, string)> mergeList, List<AddedToken> added,
        List<Func<string, string>> normalizers, string? splitOn, string? unkToken, string decodeSpace, int stripStart,
        TokenizerConfig config, string? postProcessorBos, Func<ITextTokenizer, IChatTemplate?>? chatTemplateFactory, string source)
        : base(chatTemplateFactory)
    {
        this.vocab = vocab;
        this.normalizers = normalizers;
        this.splitOn = splitOn;
        this.decodeSpace = decodeSpace;
        this.stripStart = stripStart;
        tokens = new string?[vocab.Values.Max() + 1];
        foreach (var (token, id) in vocab) tokens[id] = token;
        for (int b = 0; b < 256; b++)
            byteIds[b] = vocab.TryGetValue($"<0x{b:X2}>", out int id) ? id
                : throw new InvalidDataException($"{source}: model.vocab lacks the byte token <0x{b:X2}>, which byte_fallback needs for characters outside the vocabulary. " +
                    "Replace the file with the model's own tokenizer.json, or put the model's tokenizer.model in the directory (it is used in preference).");
        merges = new Dictionary<(int, int), (int, int)>(mergeList.Count);
        for (int rank = 0; rank < mergeList.Count; rank++)
        {
            var (left, right) = mergeList[rank];
            if (!vocab.TryGetValue(left, out int l) || !vocab.TryGetValue(right, out int r) || !vocab.TryGetValue(left + right, out int m))
                throw new InvalidDataException($"{source}: merge #{rank} \"{left} {right}\" uses a token missing from model.vocab. Vocabulary and merges must come from the same file.");
            merges.TryAdd((l, r), (rank, m)); // a repeated pair keeps its first (best) rank, as HF does
        }

        foreach (var t in added) AddAddedToken(t);
        foreach (var t in config.AddedTokens) AddAddedToken(t);
        int? bos = IdOf(config.BosToken ?? postProcessorBos, VocabId) ?? config.ConfigBosTokenId;
        int? eos = IdOf(config.EosToken, VocabId) ?? config.ConfigEosTokenIds.Cast<int?>().FirstOrDefault();
        bool addBos = config.AddBosToken ?? postProcessorBos is not null;
        SetSpecialIds(tokens.Length, bos, eos, IdOf(config.UnkToken ?? unkToken, VocabId), addBos, config.ConfigEosTokenIds);
    }

    private int? VocabId(string token) => vocab.TryGetValue(token, out int id) ? id : null;

    /// <summary>Whether a tokenizer.json holds SentencePiece-style BPE (byte_fallback) rather than byte-level BPE.</summary>
    internal static bool IsSentencePieceStyle(JsonObject root) => root["model"]?["byte_fallback"]?.GetValue<bool>() == true;

    public static SentencePieceBpeTextTokenizer FromFile(string tokenizerJsonPath, TokenizerConfig? config = null,
        Func<ITextTokenizer, IChatTemplate?>? chatTemplateFactory = null) =>
        FromJson(HfJson.ReadObject(tokenizerJsonPath), config ?? new TokenizerConfig(), chatTemplateFactory, tokenizerJsonPath);

    internal static SentencePieceBpeTextTokenizer FromJson(JsonObject root, TokenizerConfig config,
        Func<ITextTokenizer, IChatTemplate?>? chatTemplateFactory, string source)
    {
        var model = root["model"] as JsonObject ?? throw new InvalidDataException($"{source} has no \"model\" object.");
        if (model["vocab"] is not JsonObject vocabNode || vocabNode.Count == 0) throw new InvalidDataException($"{source}: model.vocab is missing or empty.");
        foreach (string unsupported in new[] { "continuing_subword_prefix", "end_of_word_suffix", "dropout" })
            if (model[unsupported] is JsonValue v && !(v.TryGetValue(out string? s) && s.Length == 0))
                throw new InvalidDataException($"{source}: model.{unsupported} is set, which this SentencePiece-style BPE reader does not implement.");
        if (model["ignore_merges"]?.GetValue<bool>() == true)
            throw new InvalidDataException($"{source}: model.ignore_merges with byte_fallback is not supported.");

        var vocab = new Dictionary<string, int>(vocabNode.Count, StringComparer.Ordinal);
        foreach (var (token, id) in vocabNode) vocab[token] = id!.GetValue<int>();
        var mergeList = new List<(string, string)>();
        foreach (var m in model["merges"]?.AsArray() ?? [])
        {
            if (m is JsonArray pair && pair.Count == 2) mergeList.Add((pair[0]!.GetValue<string>(), pair[1]!.GetValue<string>()));
            else if (m is JsonValue v && v.TryGetValue(out string? s) && s.Split(' ') is [var a, var b]) mergeList.Add((a, b));
            else throw new InvalidDataException($"{source}: merge {m?.ToJsonString()} is neither \"a b\" nor [\"a\", \"b\"].");
        }
        var added = new List<AddedToken>();
        foreach (var t in root["added_tokens"]?.AsArray().OfType<JsonObject>() ?? [])
        {
            if (t["normalized"]?.GetValue<bool>() == true || t["lstrip"]?.GetValue<bool>() == true || t["rstrip"]?.GetValue<bool>() == true)
                throw new InvalidDataException($"{source}: added token {t["content"]} is normalized / lstrip / rstrip, which this reader does not implement.");
            added.Add(new AddedToken(t["id"]!.GetValue<int>(), t["content"]!.GetValue<string>(), t["special"]?.GetValue<bool>() ?? false));
        }
        var (decodeSpace, stripStart) = ReadDecoder(root["decoder"], source);
        return new SentencePieceBpeTextTokenizer(vocab, mergeList, added, ReadNormalizers(root["normalizer"], source),
            ReadSplit(root["pre_tokenizer"], source), model["unk_token"]?.GetValue<string>(),
            decodeSpace, stripStart, config, ReadPostProcessorBos(root["post_processor"]), chatTemplateFactory, source);
    }

    private static List<Func<string, string>> ReadNormalizers(JsonNode? node, string source)
    {
        var list = new List<Func<string, string>>();
        void Visit(JsonNode? n)
        {
            if (n is null) return;
            string type = n["type"]?.GetValue<string>() ?? "";
            switch (type)
            {
                case "Sequence": foreach (var c in n["normalizers"]?.AsArray() ?? []) Visit(c); break;
                case "Prepend":
                    string prefix = n["prepend"]!.GetValue<string>();
                    list.Add(s => s.Length == 0 ? s : prefix + s);
                    break;
                case "Replace":
                    string pattern = n["pattern"]?["String"]?.GetValue<string>()
                        ?? throw new InvalidDataException($"{source}: a Replace normalizer with a regex pattern is not supported (only String).");
                    string content = n["content"]!.GetValue<string>();
                    list.Add(s => s.Replace(pattern, content, StringComparison.Ordinal));
                    break;
                case "NFC": list.Add(s => s.Normalize(NormalizationForm.FormC)); break;
                case "NFKC": list.Add(s => s.Normalize(NormalizationForm.FormKC)); break;
                default:
                    throw new InvalidDataException($"{source}: normalizer \"{type}\" is not supported for SentencePiece-style BPE (supported: Prepend, Replace, NFC, NFKC, Sequence).");
            }
        }
        Visit(node);
        return list;
    }

    private static string? ReadSplit(JsonNode? node, string source)
    {
        if (node is null) return null;
        string type = node["type"]?.GetValue<string>() ?? "";
        if (type == "Split" && node["pattern"]?["String"]?.GetValue<string>() is string s &&
            node["behavior"]?.GetValue<string>() == "MergedWithPrevious" && node["invert"]?.GetValue<bool>() != true)
            return s;
        throw new InvalidDataException($"{source}: pre_tokenizer \"{type}\" is not supported for SentencePiece-style BPE " +
            "(supported: none, or Split on a string with behavior MergedWithPrevious, as Llama 2 and Gemma 3 use). Put the model's tokenizer.model in the directory instead.");
    }

    private static (string Space, int StripStart) ReadDecoder(JsonNode? node, string source)
    {
        string space = "\u2581";
        int strip = 0;
        bool byteFallback = false;
        var decoders = node?["type"]?.GetValue<string>() == "Sequence" ? node["decoders"]!.AsArray().ToList() : [node];
        foreach (var d in decoders)
        {
            if (d is null) continue;
            switch (d["type"]?.GetValue<string>())
            {
                case "Replace":
                    if (d["content"]?.GetValue<string>() != " " || d["pattern"]?["String"]?.GetValue<string>() is not string p)
                        throw new InvalidDataException($"{source}: only a Replace decoder of a string with \" \" is supported.");
                    space = p;
                    break;
                case "ByteFallback": byteFallback = true; break;
                case "Fuse": break;
                case "Strip":
                    if (d["content"]?.GetValue<string>() != " " || (d["stop"]?.GetValue<int>() ?? 0) != 0)
                        throw new InvalidDataException($"{source}: only a Strip decoder of leading spaces is supported.");
                    strip = d["start"]?.GetValue<int>() ?? 0;
                    break;
                default:
                    throw new InvalidDataException($"{source}: decoder \"{d["type"]}\" is not supported for SentencePiece-style BPE (supported: Replace, ByteFallback, Fuse, Strip).");
            }
        }
        if (!byteFallback)
            throw new InvalidDataException($"{source}: a byte_fallback model needs a ByteFallback decoder. Replace the file with the model's own " +
                "tokenizer.json, or put the model's tokenizer.model in the directory (it is used in preference).");
        return (space, strip);
    }

    private static string? ReadPostProcessorBos(JsonNode? node)
    {
        if (node is null) return null;
        if (node["type"]?.GetValue<string>() == "Sequence")
            return (node["processors"]?.AsArray() ?? []).Select(ReadPostProcessorBos).FirstOrDefault(b => b is not null);
        if (node["type"]?.GetValue<string>() != "TemplateProcessing" || node["single"] is not JsonArray single || single.Count == 0) return null;
        return single[0]?["SpecialToken"]?["id"]?.GetValue<string>();
    }

    private protected override void EncodePlain(string text, List<int> output)
    {
        foreach (var normalize in normalizers) text = normalize(text);
        if (text.Length == 0) return;
        if (splitOn is null) { Bpe(text, output); return; }
        int start = 0;
        for (int at = text.IndexOf(splitOn, StringComparison.Ordinal); at >= 0; at = text.IndexOf(splitOn, start, StringComparison.Ordinal))
        {
            Bpe(text[start..(at + splitOn.Length)], output);
            start = at + splitOn.Length;
        }
        if (start < text.Length) Bpe(text[start..], output);
    }

    // HF's BPE word merge: characters (or their byte tokens) as symbols, then the lowest-ranked adjacent pair is
    // merged, leftmost first, until no pair has a merge. A doubly linked list and a priority queue keep it O(n log n).
    private void Bpe(string word, List<int> output)
    {
        // With byte_fallback every character has tokens (its own or its bytes'), so <unk> and fuse_unk never apply.
        var ids = new List<int>(word.Length);
        for (int i = 0; i < word.Length; i++)
        {
            int len = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            string ch = word.Substring(i, len);
            i += len - 1;
            if (vocab.TryGetValue(ch, out int id)) { ids.Add(id); continue; }
            foreach (byte b in Encoding.UTF8.GetBytes(ch)) ids.Add(byteIds[b]);
        }
        int n = ids.Count;
        if (n == 1) { output.Add(ids[0]); return; }
        var sym = ids.ToArray();
        var prev = new int[n];
        var next = new int[n];
        var alive = new bool[n];
        for (int i = 0; i < n; i++) { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1; alive[i] = true; }
        var queue = new PriorityQueue<(int Pos, int Right, int Merged), (int Rank, int Pos)>();
        void Consider(int left)
        {
            int right = left >= 0 ? next[left] : -1;
            if (left < 0 || right < 0) return;
            if (merges.TryGetValue((sym[left], sym[right]), out var m)) queue.Enqueue((left, sym[right], m.Merged), (m.Rank, left));
        }
        for (int i = 0; i < n - 1; i++) Consider(i);
        while (queue.TryDequeue(out var top, out var key))
        {
            int left = top.Pos, right = alive[left] ? next[left] : -1;
            // Stale entries: a side was merged away or changed since this pair was queued.
            if (right < 0 || sym[right] != top.Right || !merges.TryGetValue((sym[left], sym[right]), out var m) || m.Rank != key.Rank) continue;
            sym[left] = m.Merged;
            alive[right] = false;
            next[left] = next[right];
            if (next[right] >= 0) prev[next[right]] = left;
            Consider(prev[left]);
            Consider(left);
        }
        for (int i = 0; i >= 0; i = next[i]) output.Add(sym[i]);
    }

    private protected override bool AddedTokensThroughDecoder => true;

    private protected override string DecodePlain(List<int> ids, bool atStart)
    {
        var sb = new StringBuilder();
        var pendingBytes = new List<byte>();
        void FlushBytes()
        {
            if (pendingBytes.Count == 0) return;
            // ByteFallback: valid UTF-8 becomes its text, anything else one U+FFFD per byte.
            try { sb.Append(StrictUtf8.GetString(pendingBytes.ToArray())); }
            catch (DecoderFallbackException) { sb.Append('\uFFFD', pendingBytes.Count); }
            pendingBytes.Clear();
        }
        foreach (int id in ids)
        {
            string token = IdToToken(id) ?? "";
            if (token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>' &&
                byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out byte b))
            {
                pendingBytes.Add(b);
                continue;
            }
            FlushBytes();
            sb.Append(token.Replace(decodeSpace, " ", StringComparison.Ordinal));
        }
        FlushBytes();
        int cut = 0;
        if (atStart) while (cut < stripStart && cut < sb.Length && sb[cut] == ' ') cut++;
        return sb.ToString(cut, sb.Length - cut);
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private protected override string? ModelIdToToken(int id) => id >= 0 && id < tokens.Length ? tokens[id] : null;
}
