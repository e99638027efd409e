using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace ProxyOrleans.Inference.Tokenization;

/// <summary>
/// Byte-level BPE from a Hugging Face <c>tokenizer.json</c> (GPT-2, Llama 3, Qwen2, the bundled demo models).
/// Pipeline as in HF tokenizers: added tokens cut out, normalizer (NFC...), the file's split regex(es),
/// then per piece the byte-level BPE of Microsoft.ML.Tokenizers with the file's vocabulary and ranked merges.
/// </summary>
public sealed class ByteLevelBpeTextTokenizer : TextTokenizerBase
{
    /// <summary>GPT-2's pre-tokenizer split (HF ByteLevel pre-tokenizer with use_regex=true).</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    /// <summary>Llama 3's split regex (digits in groups of up to three).</summary>
    public const string Llama3Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    /// <summary>Qwen2's split regex (single digits).</summary>
    public const string Qwen2Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private readonly BpeTokenizer bpe;
    private readonly Dictionary<string, int> vocab;
    private readonly string?[] tokens;
    private readonly IReadOnlyList<Regex> splits;
    private readonly NormalizationForm? normalization;
    private readonly bool addPrefixSpace;
    private readonly bool ignoreMerges;

    public override string Kind => "bpe";

    /// <summary>The split regexes applied in order (from the file's pre_tokenizer).</summary>
    public IReadOnlyList<string> SplitPatterns => splits.Select(r => r.ToString()).ToArray();

    private ByteLevelBpeTextTokenizer(Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges,
        IReadOnlyList<AddedToken> addedTokens, IReadOnlyList<string> splitPatterns, NormalizationForm? normalization,
        bool addPrefixSpace, bool ignoreMerges, TokenizerConfig config, string? postProcessorBos,
        Func<ITextTokenizer, IChatTemplate?>? chatTemplateFactory, string source) : base(chatTemplateFactory)
    {
        this.vocab = vocab;
        this.normalization = normalization;
        this.addPrefixSpace = addPrefixSpace;
        this.ignoreMerges = ignoreMerges;
        splits = splitPatterns.Select(p => new Regex(p, RegexOptions.Compiled | RegexOptions.CultureInvariant)).ToArray();

        foreach (string symbol in ByteLevel.ByteSymbols)
            if (!vocab.ContainsKey(symbol))
                throw new InvalidDataException(
                    $"{source}: model.vocab lacks the byte-level symbol '{symbol}' (byte 0x{(int)ByteLevelByte(symbol):X2}), so some text could not be " +
                    "encoded. A byte-level BPE vocabulary holds all 256 byte symbols; regenerate the file (ByteLevelBpeTokenizerFile.Write does).");
        for (int i = 0; i < merges.Count; i++)
        {
            var (left, right) = merges[i];
            if (!vocab.ContainsKey(left) || !vocab.ContainsKey(right) || !vocab.ContainsKey(left + right))
                throw new InvalidDataException(
                    $"{source}: merge #{i} \"{left} {right}\" uses a token missing from model.vocab. Vocabulary and merges must come from the same training run.");
        }

        tokens = new string?[vocab.Count == 0 ? 0 : vocab.Values.Max() + 1];
        foreach (var (token, id) in vocab) tokens[id] = token;

        // Each piece reaches the BPE whole: splitting is done here, with the file's regexes.
        var whole = new RegexPreTokenizer(new Regex(@"[\s\S]+", RegexOptions.Compiled), null);
        bpe = BpeTokenizer.Create(new BpeOptions(vocab)
        {
            Merges = merges.Select(m => m.Left + " " + m.Right).ToArray(),
            ByteLevel = true,
            PreTokenizer = whole,
        });

        foreach (var t in addedTokens) AddAddedToken(t);
        foreach (var t in config.AddedTokens) AddAddedToken(t);

        int? bos = IdOf(config.BosToken ?? postProcessorBos, VocabId) ?? config.ConfigBosTokenId;
        int? eos = IdOf(config.EosToken, VocabId) ?? config.ConfigEosTokenIds.Cast<int?>().FirstOrDefault();
        int? unk = IdOf(config.UnkToken, VocabId);
        bool addBos = config.AddBosToken ?? postProcessorBos is not null;
        SetSpecialIds(tokens.Length, bos, eos, unk, addBos, config.ConfigEosTokenIds);
    }

    private static byte ByteLevelByte(string symbol)
    {
        var bytes = new List<byte>();
        ByteLevel.TryAppendBytes(symbol, bytes);
        return bytes[0];
    }

    private int? VocabId(string token) => vocab.TryGetValue(token, out int id) ? id : null;

    /// <summary>Loads tokenizer.json (and the optional tokenizer_config.json / config.json beside it).</summary>
    public static ByteLevelBpeTextTokenizer FromFile(string tokenizerJsonPath, TokenizerConfig? config = null,
        Func<ITextTokenizer, IChatTemplate?>? chatTemplateFactory = null)
    {
        return FromParsed(HfJson.ReadObject(tokenizerJsonPath), config, chatTemplateFactory, tokenizerJsonPath);
    }

    internal static ByteLevelBpeTextTokenizer FromParsed(JsonObject root, TokenizerConfig? config,
        Func<ITextTokenizer, IChatTemplate?>? chatTemplateFactory, string tokenizerJsonPath)
    {
        try
        {
            return FromJson(root, config ?? new TokenizerConfig(), chatTemplateFactory, tokenizerJsonPath);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or KeyNotFoundException or ArgumentException)
        {
            throw new InvalidDataException($"{tokenizerJsonPath} could not be read as a byte-level BPE tokenizer ({e.Message}). " +
                "Replace it with the tokenizer.json from the model's Hugging Face repository.", e);
        }
    }

    internal static ByteLevelBpeTextTokenizer FromJson(JsonObject root, TokenizerConfig config,
        Func<ITextTokenizer, IChatTemplate?>? chatTemplateFactory, string source)
    {
        if (root["model"] is not JsonObject model)
            throw new InvalidDataException($"{source} has no \"model\" object. Replace it with the tokenizer.json from the model's Hugging Face repository.");
        string type = model["type"]?.GetValue<string>() ?? "BPE";
        if (type != "BPE")
            throw new InvalidDataException($"{source}: model.type is \"{type}\"; only byte-level \"BPE\" tokenizer.json files are supported " +
                "(for SentencePiece models put tokenizer.model in the directory).");
        if (model["byte_fallback"]?.GetValue<bool>() == true)
            throw new InvalidDataException($"{source} is a SentencePiece-style BPE (byte_fallback), not byte-level BPE. " +
                "Load it with TokenizerLoader.Load(dir) or SentencePieceBpeTextTokenizer.FromFile, which read that kind.");
        if (model["vocab"] is not JsonObject vocabNode || vocabNode.Count == 0)
            throw new InvalidDataException($"{source}: model.vocab is missing or empty.");

        var vocab = new Dictionary<string, int>(vocabNode.Count, StringComparer.Ordinal);
        foreach (var (token, id) in vocabNode) vocab[token] = id!.GetValue<int>();

        var merges = new List<(string, string)>();
        if (model["merges"] is JsonArray mergeList)
        {
            foreach (var m in mergeList)
            {
                // Older files: "a b"; newer files: ["a", "b"] (tokens may then contain spaces).
                if (m is JsonArray pair && pair.Count == 2)
                    merges.Add((pair[0]!.GetValue<string>(), pair[1]!.GetValue<string>()));
                else if (m is JsonValue v && v.TryGetValue(out string? s) && s.Split(' ') is [var a, var b])
                    merges.Add((a, b));
                else
                    throw new InvalidDataException($"{source}: merge {m?.ToJsonString()} is neither \"a b\" nor [\"a\", \"b\"].");
            }
        }
        if (merges.Any(m => m.Item1.Contains(' ') || m.Item2.Contains(' ')))
            throw new InvalidDataException($"{source}: a merge holds a raw space, which a byte-level vocabulary never does (space is 'Ġ').");

        var added = new List<AddedToken>();
        if (root["added_tokens"] is JsonArray addedList)
            foreach (var t in addedList.OfType<JsonObject>())
                added.Add(new AddedToken(t["id"]!.GetValue<int>(), t["content"]!.GetValue<string>(), t["special"]?.GetValue<bool>() ?? false));

        var (patterns, byteLevel, addPrefixSpace) = ReadPreTokenizer(root["pre_tokenizer"], source);
        if (!byteLevel && root["decoder"]?["type"]?.GetValue<string>() != "ByteLevel")
            throw new InvalidDataException($"{source} is a BPE tokenizer but not byte-level (no ByteLevel pre-tokenizer or decoder); " +
                "only byte-level BPE (GPT-2, Llama 3, Qwen2 style) is supported from tokenizer.json.");

        return new ByteLevelBpeTextTokenizer(vocab, merges, added, patterns, ReadNormalizer(root["normalizer"], source),
            addPrefixSpace, model["ignore_merges"]?.GetValue<bool>() ?? false, config, ReadPostProcessorBos(root["post_processor"]),
            chatTemplateFactory, source);
    }

    private static (List<string> Patterns, bool ByteLevel, bool AddPrefixSpace) ReadPreTokenizer(JsonNode? node, string source)
    {
        var patterns = new List<string>();
        bool byteLevel = false, addPrefixSpace = false;
        void Visit(JsonNode? n)
        {
            if (n is null) return;
            string type = n["type"]?.GetValue<string>() ?? "";
            switch (type)
            {
                case "Sequence":
                    foreach (var child in n["pretokenizers"]?.AsArray() ?? []) Visit(child);
                    break;
                case "ByteLevel":
                    byteLevel = true;
                    addPrefixSpace |= n["add_prefix_space"]?.GetValue<bool>() ?? false;
                    if (n["use_regex"]?.GetValue<bool>() ?? true) patterns.Add(Gpt2Pattern);
                    break;
                case "Split":
                    string behavior = n["behavior"]?.GetValue<string>() ?? "Isolated";
                    if (behavior != "Isolated" || (n["invert"]?.GetValue<bool>() ?? false))
                        throw new InvalidDataException($"{source}: Split pre-tokenizer with behavior {behavior} / invert is not supported (only Isolated).");
                    if (n["pattern"]?["Regex"]?.GetValue<string>() is string regex) patterns.Add(regex);
                    else if (n["pattern"]?["String"]?.GetValue<string>() is string literal) patterns.Add(Regex.Escape(literal));
                    else throw new InvalidDataException($"{source}: Split pre-tokenizer without a pattern.");
                    break;
                case "Digits":
                    patterns.Add(n["individual_digits"]?.GetValue<bool>() == true ? @"\p{N}" : @"\p{N}+");
                    break;
                default:
                    throw new InvalidDataException($"{source}: pre_tokenizer type \"{type}\" is not supported " +
                        "(supported: ByteLevel, Split, Digits and Sequence of them, as GPT-2, Llama 3 and Qwen2 use).");
            }
        }
        Visit(node);
        return (patterns, byteLevel, addPrefixSpace);
    }

    private static NormalizationForm? ReadNormalizer(JsonNode? node, string source)
    {
        if (node is null) return null;
        string type = node["type"]?.GetValue<string>() ?? "";
        return type switch
        {
            "NFC" => NormalizationForm.FormC,
            "NFD" => NormalizationForm.FormD,
            "NFKC" => NormalizationForm.FormKC,
            "NFKD" => NormalizationForm.FormKD,
            "Sequence" when node["normalizers"] is JsonArray { Count: 0 } => null,
            "Sequence" when node["normalizers"] is JsonArray { Count: 1 } one => ReadNormalizer(one[0], source),
            _ => throw new InvalidDataException($"{source}: normalizer \"{type}\" is not supported (supported: none, NFC, NFD, NFKC, NFKD)."),
        };
    }

    // The BOS a TemplateProcessing post-processor puts in front of a single text (Llama 3), if any.
    private static string? ReadPostProcessorBos(JsonNode? node)
    {
        if (node is null) return null;
        if (node["type"]?.GetValue<string>() == "Sequence")
            return (node["processors"]?.AsArray() ?? []).Select(ReadPostProcessorBos).FirstOrDefault(b => b is not null);
        if (node["type"]?.GetValue<string>() != "TemplateProcessing" || node["single"] is not JsonArray single || single.Count == 0)
            return null;
        return single[0]?["SpecialToken"]?["id"]?.GetValue<string>();
    }

    private protected override void EncodePlain(string text, List<int> output)
    {
        if (text.Length == 0) return;
        if (normalization is NormalizationForm form) text = text.Normalize(form);
        if (addPrefixSpace && text[0] != ' ') text = " " + text;

        IEnumerable<string> pieces = [text];
        foreach (var regex in splits) pieces = pieces.SelectMany(p => Split(regex, p)).ToList();
        foreach (string piece in pieces)
        {
            // ignore_merges (Llama 3): a piece that is itself a vocabulary token is taken whole.
            if (ignoreMerges && vocab.TryGetValue(ByteLevel.Encode(piece), out int whole)) { output.Add(whole); continue; }
            output.AddRange(bpe.EncodeToIds(piece));
        }
    }

    // HF Split with behavior Isolated: every match is a piece, and so is any text between matches.
    private static IEnumerable<string> Split(Regex regex, string text)
    {
        int last = 0;
        for (var m = regex.Match(text); m.Success; m = m.NextMatch())
        {
            if (m.Length == 0) continue;
            if (m.Index > last) yield return text[last..m.Index];
            yield return m.Value;
            last = m.Index + m.Length;
        }
        if (last < text.Length) yield return text[last..];
    }

    private protected override string DecodePlain(List<int> ids, bool atStart)
    {
        var bytes = new List<byte>(ids.Count * 4);
        foreach (int id in ids)
        {
            string token = tokens[id] ?? "";
            if (!ByteLevel.TryAppendBytes(token, bytes)) bytes.AddRange(Encoding.UTF8.GetBytes(token));
        }
        // Invalid or cut UTF-8 becomes U+FFFD, which the streaming detokenizer holds back.
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    private protected override string? ModelIdToToken(int id) => id >= 0 && id < tokens.Length ? tokens[id] : null;
}
