using System.Text.Json;
using System.Text.Json.Nodes;

namespace ProxyOrleans.Inference.Tokenization;

/// <summary>Options for <see cref="ByteLevelBpeTokenizerFile.Write"/>: the tokenizer_config.json side.</summary>
public sealed record ByteLevelBpeFileOptions
{
    /// <summary>BOS token (must be one of the special tokens); null for models without BOS (GPT-2, Qwen2 style).</summary>
    public string? BosToken { get; init; }
    public string? EosToken { get; init; }
    /// <summary>Whether encoding puts BOS in front (written as add_bos_token and a TemplateProcessing post-processor).</summary>
    public bool AddBosToken { get; init; }
    /// <summary>Jinja chat template, e.g. <see cref="ChatTemplates.ChatMlJinja"/>; null for base models.</summary>
    public string? ChatTemplate { get; init; }
    /// <summary>The pre-tokenizer split regex (default GPT-2's; <see cref="ByteLevelBpeTextTokenizer.Llama3Pattern"/> also works).</summary>
    public string SplitPattern { get; init; } = ByteLevelBpeTextTokenizer.Gpt2Pattern;
    public int ModelMaxLength { get; init; } = 2048;
}

/// <summary>
/// Writes a byte-level BPE tokenizer in the standard Hugging Face layout (tokenizer.json + tokenizer_config.json),
/// loadable by <see cref="TokenizerLoader"/> here and by HF tokenizers / transformers elsewhere.
/// </summary>
public static class ByteLevelBpeTokenizerFile
{
    /// <summary>
    /// Builds vocabulary and merges from merges learned on raw bytes: ids 0..255 are the byte symbols in byte order,
    /// then one token per merge in merge order (the usual byte-level BPE layout).
    /// </summary>
    public static (Dictionary<string, int> Vocab, List<(string Left, string Right)> Merges) FromByteMerges(
        IEnumerable<(byte[] Left, byte[] Right)> byteMerges)
    {
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (string symbol in ByteLevel.ByteSymbols) vocab[symbol] = vocab.Count;
        var merges = new List<(string, string)>();
        foreach (var (left, right) in byteMerges)
        {
            string l = ByteLevel.Encode(left), r = ByteLevel.Encode(right);
            if (!vocab.ContainsKey(l) || !vocab.ContainsKey(r))
                throw new ArgumentException($"Merge ({l}, {r}) uses a token that no earlier merge produced.", nameof(byteMerges));
            merges.Add((l, r));
            vocab.TryAdd(l + r, vocab.Count);
        }
        return (vocab, merges);
    }

    /// <summary>
    /// Writes <c>tokenizer.json</c> and <c>tokenizer_config.json</c> into <paramref name="directory"/>.
    /// <paramref name="vocab"/> and <paramref name="merges"/> use byte-level symbols ('Ġ' for space, see <see cref="ByteLevel"/>);
    /// special tokens not already in the vocabulary get the next ids, in order.
    /// </summary>
    /// <returns>The id of every special token.</returns>
    public static IReadOnlyDictionary<string, int> Write(string directory, IReadOnlyDictionary<string, int> vocab,
        IReadOnlyList<(string Left, string Right)> merges, IReadOnlyList<string> specialTokens, ByteLevelBpeFileOptions? options = null)
    {
        options ??= new ByteLevelBpeFileOptions();
        Directory.CreateDirectory(directory);

        int nextId = vocab.Count == 0 ? 0 : vocab.Values.Max() + 1;
        var specialIds = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (string s in specialTokens)
            specialIds[s] = vocab.TryGetValue(s, out int id) ? id : nextId++;
        foreach (string? t in new[] { options.BosToken, options.EosToken })
            if (t is not null && !specialIds.ContainsKey(t))
                throw new ArgumentException($"BOS/EOS token '{t}' must be listed in specialTokens.", nameof(options));

        var added = new JsonArray();
        var addedDecoder = new JsonObject();
        foreach (var (content, id) in specialIds.OrderBy(kv => kv.Value))
        {
            added.Add(new JsonObject
            {
                ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false,
                ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
            });
            addedDecoder[id.ToString()] = new JsonObject
            {
                ["content"] = content, ["lstrip"] = false, ["normalized"] = false,
                ["rstrip"] = false, ["single_word"] = false, ["special"] = true,
            };
        }

        JsonNode byteLevelNode(bool addPrefixSpace, bool useRegex) => new JsonObject
        {
            ["type"] = "ByteLevel", ["add_prefix_space"] = addPrefixSpace, ["trim_offsets"] = true, ["use_regex"] = useRegex,
        };

        JsonNode postProcessor = byteLevelNode(true, true);
        if (options.AddBosToken && options.BosToken is string bos)
        {
            JsonNode special() => new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = bos, ["type_id"] = 0 } };
            JsonNode seq(string id, int typeId) => new JsonObject { ["Sequence"] = new JsonObject { ["id"] = id, ["type_id"] = typeId } };
            postProcessor = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(special(), seq("A", 0)),
                ["pair"] = new JsonArray(special(), seq("A", 0), special(), seq("B", 1)),
                ["special_tokens"] = new JsonObject
                {
                    [bos] = new JsonObject { ["id"] = bos, ["ids"] = new JsonArray(specialIds[bos]), ["tokens"] = new JsonArray(bos) },
                },
            };
        }

        var vocabNode = new JsonObject();
        foreach (var (token, id) in vocab.OrderBy(kv => kv.Value)) vocabNode[token] = id;
        var mergesNode = new JsonArray();
        foreach (var (l, r) in merges) mergesNode.Add(new JsonArray(l, r));

        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject
                    {
                        ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = options.SplitPattern },
                        ["behavior"] = "Isolated", ["invert"] = false,
                    },
                    byteLevelNode(false, false)),
            },
            ["post_processor"] = postProcessor,
            ["decoder"] = byteLevelNode(true, true),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
                ["vocab"] = vocabNode, ["merges"] = mergesNode,
            },
        };

        var config = new JsonObject
        {
            ["add_bos_token"] = options.AddBosToken,
            ["add_eos_token"] = false,
            ["added_tokens_decoder"] = addedDecoder,
            ["bos_token"] = options.BosToken,
            ["clean_up_tokenization_spaces"] = false,
            ["eos_token"] = options.EosToken,
            ["model_max_length"] = options.ModelMaxLength,
            ["tokenizer_class"] = "PreTrainedTokenizerFast",
        };
        if (options.ChatTemplate is not null) config["chat_template"] = options.ChatTemplate;

        var json = new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        File.WriteAllText(Path.Combine(directory, "tokenizer.json"), tokenizer.ToJsonString(json));
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), config.ToJsonString(json));
        return specialIds;
    }
}
