using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ProxyOrleans.Training.Data;

/// <summary>
/// A byte-level BPE tokenizer as GPT-2 / Qwen2 define it (GPT-2 pre-tokenizer regex, bytes mapped to printable
/// characters), trained on the demo corpus and saved as a Hugging Face tokenizer.json. Digits are never merged,
/// so numbers are spelled digit by digit (as Llama does), which makes addition learnable by small models.
/// </summary>
public sealed partial class ByteLevelBpe
{
    public const string EndOfText = "<|endoftext|>";
    public const string ImStart = "<|im_start|>";
    public const string ImEnd = "<|im_end|>";
    public static readonly string[] SpecialTokens = [EndOfText, ImStart, ImEnd];

    /// <summary>ChatML, as Hugging Face renders it (no default system message).</summary>
    public const string ChatMlTemplate =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")]
    private static partial Regex Gpt2PreTokenizer();

    static readonly char[] ByteToChar = BuildByteMap();
    static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, i) => (c, (byte)i)).ToDictionary(t => t.c, t => t.Item2);

    public IReadOnlyList<string> Vocab { get; }
    public IReadOnlyList<(string Left, string Right)> Merges { get; }
    readonly Dictionary<string, int> ids;
    readonly Dictionary<(string, string), int> ranks;
    readonly Dictionary<string, int[]> cache = new();

    public int VocabSize => Vocab.Count;
    public int Id(string token) => ids.TryGetValue(token, out int id) ? id : throw new KeyNotFoundException($"Token '{token}' is not in the vocabulary.");

    ByteLevelBpe(IReadOnlyList<string> vocab, IReadOnlyList<(string, string)> merges)
    {
        Vocab = vocab;
        Merges = merges;
        ids = vocab.Select((t, i) => (t, i)).ToDictionary(x => x.t, x => x.i);
        ranks = merges.Select((m, i) => (m, i)).ToDictionary(x => x.m, x => x.i);
    }

    /// <summary>GPT-2's reversible map from bytes to printable characters (space becomes 'Ġ').</summary>
    static char[] BuildByteMap()
    {
        var map = new char[256];
        var direct = new List<int>();
        for (int b = '!'; b <= '~'; b++) direct.Add(b);
        for (int b = 0xA1; b <= 0xAC; b++) direct.Add(b);
        for (int b = 0xAE; b <= 0xFF; b++) direct.Add(b);
        int n = 0;
        for (int b = 0; b < 256; b++)
            map[b] = direct.Contains(b) ? (char)b : (char)(256 + n++);
        return map;
    }

    static string ToByteChars(string text) => new(Encoding.UTF8.GetBytes(text).Select(b => ByteToChar[b]).ToArray());

    /// <summary>
    /// Learns merges from <paramref name="texts"/> until the vocabulary (bytes + merges + special tokens) reaches
    /// <paramref name="vocabSize"/> or no pair occurs twice. Deterministic: ties break by ordinal order.
    /// </summary>
    public static ByteLevelBpe Train(IEnumerable<string> texts, int vocabSize)
    {
        if (vocabSize < 256 + SpecialTokens.Length)
            throw new ArgumentOutOfRangeException(nameof(vocabSize), $"vocabSize must be at least {256 + SpecialTokens.Length}.");
        var wordCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var text in texts)
            foreach (var segment in SplitSpecial(text))
                if (!segment.IsSpecial)
                    foreach (Match m in Gpt2PreTokenizer().Matches(segment.Text))
                    {
                        string w = ToByteChars(m.Value);
                        wordCounts[w] = wordCounts.GetValueOrDefault(w) + 1;
                    }

        var words = wordCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => (Symbols: kv.Key.Select(c => c.ToString()).ToList(), Count: kv.Value)).ToList();
        var vocab = Enumerable.Range(0, 256).Select(b => ByteToChar[b].ToString()).ToList();
        var merges = new List<(string, string)>();
        while (vocab.Count + SpecialTokens.Length < vocabSize)
        {
            var pairCounts = new Dictionary<(string, string), int>();
            foreach (var (symbols, count) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    // Digits stay single tokens: numbers are read and written digit by digit.
                    if (symbols[i].Any(char.IsAsciiDigit) || symbols[i + 1].Any(char.IsAsciiDigit)) continue;
                    var pair = (symbols[i], symbols[i + 1]);
                    pairCounts[pair] = pairCounts.GetValueOrDefault(pair) + count;
                }
            if (pairCounts.Count == 0) break;
            var best = pairCounts.OrderByDescending(kv => kv.Value)
                .ThenBy(kv => kv.Key.Item1, StringComparer.Ordinal).ThenBy(kv => kv.Key.Item2, StringComparer.Ordinal).First();
            if (best.Value < 2) break;
            var (left, right) = best.Key;
            merges.Add((left, right));
            vocab.Add(left + right);
            foreach (var (symbols, _) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    if (symbols[i] == left && symbols[i + 1] == right)
                    {
                        symbols[i] = left + right;
                        symbols.RemoveAt(i + 1);
                    }
        }
        vocab.AddRange(SpecialTokens);
        return new ByteLevelBpe(vocab, merges);
    }

    readonly record struct Segment(string Text, bool IsSpecial);

    static IEnumerable<Segment> SplitSpecial(string text)
    {
        int start = 0;
        while (start < text.Length)
        {
            int best = -1;
            string? which = null;
            foreach (var s in SpecialTokens)
            {
                int at = text.IndexOf(s, start, StringComparison.Ordinal);
                if (at >= 0 && (best < 0 || at < best)) { best = at; which = s; }
            }
            if (best < 0) { yield return new(text[start..], false); yield break; }
            if (best > start) yield return new(text[start..best], false);
            yield return new(which!, true);
            start = best + which!.Length;
        }
    }

    /// <summary>Text to ids as Hugging Face does: special tokens written in the text become their ids.</summary>
    public int[] Encode(string text)
    {
        var result = new List<int>();
        foreach (var segment in SplitSpecial(text))
        {
            if (segment.IsSpecial) { result.Add(ids[segment.Text]); continue; }
            foreach (Match m in Gpt2PreTokenizer().Matches(segment.Text))
            {
                if (!cache.TryGetValue(m.Value, out var word))
                    cache[m.Value] = word = EncodeWord(ToByteChars(m.Value));
                result.AddRange(word);
            }
        }
        return result.ToArray();
    }

    int[] EncodeWord(string byteChars)
    {
        var symbols = byteChars.Select(c => c.ToString()).ToList();
        while (symbols.Count > 1)
        {
            int bestRank = int.MaxValue, at = -1;
            for (int i = 0; i + 1 < symbols.Count; i++)
                if (ranks.TryGetValue((symbols[i], symbols[i + 1]), out int r) && r < bestRank) { bestRank = r; at = i; }
            if (at < 0) break;
            var (l, rr) = Merges[bestRank];
            for (int i = 0; i + 1 < symbols.Count; i++)
                if (symbols[i] == l && symbols[i + 1] == rr)
                {
                    symbols[i] = l + rr;
                    symbols.RemoveAt(i + 1);
                }
        }
        return symbols.Select(s => ids[s]).ToArray();
    }

    public string Decode(IEnumerable<int> tokenIds, bool skipSpecial = true)
    {
        var bytes = new List<byte>();
        var sb = new StringBuilder();
        foreach (int id in tokenIds)
        {
            string t = Vocab[id];
            if (SpecialTokens.Contains(t))
            {
                sb.Append(Encoding.UTF8.GetString(bytes.ToArray()));
                bytes.Clear();
                if (!skipSpecial) sb.Append(t);
                continue;
            }
            bytes.AddRange(t.Select(c => CharToByte[c]));
        }
        sb.Append(Encoding.UTF8.GetString(bytes.ToArray()));
        return sb.ToString();
    }

    /// <summary>Writes tokenizer.json and tokenizer_config.json (with the ChatML template) in Hugging Face's format.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var added = new JsonArray();
        var addedDecoder = new JsonObject();
        foreach (var s in SpecialTokens)
        {
            JsonObject Entry() => new()
            {
                ["content"] = s, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = false, ["special"] = true,
            };
            var e = Entry();
            e.Insert(0, "id", ids[s]);
            added.Add(e);
            addedDecoder[ids[s].ToString()] = Entry();
        }
        var vocab = new JsonObject();
        for (int i = 0; i < Vocab.Count; i++)
            if (!SpecialTokens.Contains(Vocab[i])) vocab[Vocab[i]] = i;
        var merges = new JsonArray(Merges.Select(m => (JsonNode)new JsonArray(m.Left, m.Right)).ToArray());
        JsonObject ByteLevel(bool prefix, bool trim) => new()
        {
            ["type"] = "ByteLevel", ["add_prefix_space"] = prefix, ["trim_offsets"] = trim, ["use_regex"] = true,
        };
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = null,
            ["pre_tokenizer"] = ByteLevel(false, true),
            ["post_processor"] = ByteLevel(false, false),
            ["decoder"] = ByteLevel(false, true),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
                ["vocab"] = vocab, ["merges"] = merges,
            },
        };
        var options = new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        File.WriteAllText(Path.Combine(directory, "tokenizer.json"), tokenizer.ToJsonString(options));
        var config = new JsonObject
        {
            ["add_bos_token"] = false,
            ["add_eos_token"] = false,
            ["added_tokens_decoder"] = addedDecoder,
            ["bos_token"] = null,
            ["eos_token"] = ImEnd,
            ["pad_token"] = EndOfText,
            ["unk_token"] = null,
            ["chat_template"] = ChatMlTemplate,
            ["clean_up_tokenization_spaces"] = false,
            ["model_max_length"] = 512,
            ["tokenizer_class"] = "PreTrainedTokenizerFast",
        };
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), config.ToJsonString(options));
    }

    /// <summary>Reads back a tokenizer.json written by <see cref="Save"/> (or any byte-level BPE file with these specials).</summary>
    public static ByteLevelBpe Load(string directory)
    {
        var root = JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "tokenizer.json")))!;
        var model = root["model"]!;
        var vocabPairs = model["vocab"]!.AsObject().Select(kv => (kv.Key, Id: kv.Value!.GetValue<int>()));
        var addedPairs = root["added_tokens"]!.AsArray().Select(t => (Key: t!["content"]!.GetValue<string>(), Id: t["id"]!.GetValue<int>()));
        var all = vocabPairs.Concat(addedPairs).OrderBy(x => x.Id).ToList();
        for (int i = 0; i < all.Count; i++)
            if (all[i].Id != i) throw new InvalidDataException($"tokenizer.json ids are not dense at {i}.");
        var merges = model["merges"]!.AsArray().Select(m => m is JsonArray a
            ? (a[0]!.GetValue<string>(), a[1]!.GetValue<string>())
            : SplitMerge(m!.GetValue<string>())).ToList();
        return new ByteLevelBpe(all.Select(x => x.Key).ToList(), merges);
    }

    static (string, string) SplitMerge(string m)
    {
        int space = m.IndexOf(' ');
        return (m[..space], m[(space + 1)..]);
    }
}
