using System.Text.Json;
using System.Text.Json.Nodes;
using ProxyOrleans.Inference.Tokenization;
using Xunit;
using static ProxyOrleans.Inference.Tests.Tokenization.TokenizerTestData;

namespace ProxyOrleans.Inference.Tests.Tokenization;

public class ByteLevelBpeTokenizerTests
{
    // ids: 0..255 bytes in byte order, then he=256 ll=257 hell=258 hello=259 Ġw=260 or=261 Ġwor=262 ld=263 Ġworld=264.
    private static readonly string[] HelloWorldMerges = ["h|e", "l|l", "he|ll", "hell|o", " |w", "o|r", " w|or", "l|d", " wor|ld"];

    private static TextTokenizerBase WriteAndLoad(string dir, string[] merges, string[] specials, ByteLevelBpeFileOptions? options = null)
    {
        var (vocab, m) = ByteLevelBpeTokenizerFile.FromByteMerges(Merges(merges));
        ByteLevelBpeTokenizerFile.Write(dir, vocab, m, specials, options);
        return TokenizerLoader.Load(dir);
    }

    [Fact]
    public void Written_file_loads_and_applies_merges_to_whole_words()
    {
        using var dir = NewTempDir();
        var tok = WriteAndLoad(dir.Path, HelloWorldMerges, ["<|endoftext|>"]);
        Assert.Equal("bpe", tok.Kind);
        Assert.Equal(266, tok.VocabSize);
        Assert.Equal([259, 264], tok.Encode("hello world"));
        Assert.Equal("hello world", tok.Decode([259, 264]));
        // GPT-2 split: "hello", " ", " world" (\s+(?!\S) leaves the last space to the word).
        Assert.Equal([259, 32, 264], tok.Encode("hello  world"));
        Assert.Equal("hello  world", tok.Decode([259, 32, 264]));
    }

    [Fact]
    public void Merges_apply_in_rank_order()
    {
        using var first = NewTempDir();
        using var second = NewTempDir();
        // a b first: "abc" -> ab + c; b c first: a + bc. Same strings, so only the rank decides.
        var abFirst = WriteAndLoad(first.Path, ["a|b", "b|c"], []);
        var bcFirst = WriteAndLoad(second.Path, ["b|c", "a|b"], []);
        Assert.Equal([256, 'c'], abFirst.Encode("abc"));
        Assert.Equal("ab", abFirst.IdToToken(256));
        Assert.Equal(['a', 256], bcFirst.Encode("abc"));
        Assert.Equal("bc", bcFirst.IdToToken(256));
    }

    [Fact]
    public void Bytes_map_to_gpt2_symbols_and_partial_characters_decode_to_replacement()
    {
        using var dir = NewTempDir();
        var tok = WriteAndLoad(dir.Path, HelloWorldMerges, []);
        Assert.Equal("Ġ", tok.IdToToken(' '));
        Assert.Equal("Ċ", tok.IdToToken('\n'));
        Assert.Equal("Ġworld", tok.IdToToken(264));
        Assert.Equal([0xC3, 0xA9], tok.Encode("é"));                 // é is C3 A9 in UTF-8
        Assert.Equal("é", tok.Decode([0xC3, 0xA9]));
        Assert.Equal("\uFFFD", tok.Decode([0xC3]));
        Assert.Equal([0xF0, 0x9F, 0x9A, 0x80], tok.Encode("🚀"));
        Assert.Equal("a\n\tb 🚀 北京", tok.Decode(tok.Encode("a\n\tb 🚀 北京")));
    }

    [Fact]
    public void Special_tokens_are_parsed_only_when_asked_and_skipped_on_decode()
    {
        using var dir = NewTempDir();
        var tok = WriteAndLoad(dir.Path, HelloWorldMerges, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]);
        int start = tok.Encode("<|im_start|>", false, parseSpecialTokens: true).Single();
        Assert.Equal(266, start);
        Assert.Equal([266, 'u', 's', 'e', 'r', 10, 259, 267], tok.Encode("<|im_start|>user\nhello<|im_end|>", false, parseSpecialTokens: true));
        int[] plain = tok.Encode("<|im_start|>user", false);
        Assert.DoesNotContain(266, plain);
        Assert.Equal("<|im_start|>user", tok.Decode(plain));
        Assert.Equal("user", tok.Decode([266, 'u', 's', 'e', 'r']));
        Assert.Equal("<|im_start|>user", tok.Decode([266, 'u', 's', 'e', 'r'], skipSpecialTokens: false));
    }

    [Fact]
    public void Bos_is_added_as_configured_and_eos_comes_from_tokenizer_config()
    {
        using var dir = NewTempDir();
        var tok = WriteAndLoad(dir.Path, HelloWorldMerges, ["<s>", "</s>"],
            new ByteLevelBpeFileOptions { BosToken = "<s>", EosToken = "</s>", AddBosToken = true });
        Assert.Equal(265, tok.BosTokenId);
        Assert.Equal(266, tok.EosTokenId);
        Assert.Equal([265, 259], tok.Encode("hello"));
        Assert.Equal([259], tok.Encode("hello", addBos: false));

        // Without tokenizer_config.json the BOS comes from the TemplateProcessing post-processor (as in Llama 3).
        File.Delete(Path.Combine(dir.Path, "tokenizer_config.json"));
        var bare = TokenizerLoader.Load(dir.Path);
        Assert.Equal([265, 259], bare.Encode("hello"));
        Assert.Null(bare.EosTokenId);
    }

    [Fact]
    public void Models_without_bos_add_none()
    {
        using var dir = NewTempDir();
        var tok = WriteAndLoad(dir.Path, HelloWorldMerges, ["<|endoftext|>"], new ByteLevelBpeFileOptions { EosToken = "<|endoftext|>" });
        Assert.Null(tok.BosTokenId);
        Assert.Equal(265, tok.EosTokenId);
        Assert.Equal([259], tok.Encode("hello"));
    }

    [Fact]
    public void Split_regex_comes_from_the_file()
    {
        using var gpt2 = NewTempDir();
        using var llama3 = NewTempDir();
        var a = WriteAndLoad(gpt2.Path, ["3|4"], []);
        var b = WriteAndLoad(llama3.Path, ["3|4"], [], new ByteLevelBpeFileOptions { SplitPattern = ByteLevelBpeTextTokenizer.Llama3Pattern });
        // GPT-2 keeps "12345" whole, so 3+4 merge; Llama 3 splits digits in threes: "123" | "45".
        Assert.Equal(['1', '2', 256, '5'], a.Encode("12345"));
        Assert.Equal(['1', '2', '3', '4', '5'], b.Encode("12345"));
    }

    // A Llama-3 / Qwen2-shaped tokenizer.json written by hand: "a b" string merges, Split + ByteLevel,
    // NFC normalizer, TemplateProcessing BOS, added tokens outside model.vocab, ignore_merges.
    private static string WriteHandMadeFile(string dir, bool ignoreMerges)
    {
        var vocab = new JsonObject();
        for (int b = 0; b < 256; b++) vocab[ByteLevel.ByteSymbols[b]] = b;
        vocab["ab"] = 256;
        vocab["Ġabc"] = 257; // reachable only through ignore_merges (no merge builds it)
        var root = new JsonObject
        {
            ["added_tokens"] = new JsonArray(
                new JsonObject { ["id"] = 258, ["content"] = "<|begin_of_text|>", ["special"] = true },
                new JsonObject { ["id"] = 259, ["content"] = "<|eot_id|>", ["special"] = true }),
            ["normalizer"] = new JsonObject { ["type"] = "NFC" },
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = ByteLevelBpeTextTokenizer.Llama3Pattern }, ["behavior"] = "Isolated", ["invert"] = false },
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false }),
            },
            ["post_processor"] = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(
                    new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = "<|begin_of_text|>", ["type_id"] = 0 } },
                    new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
            },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["ignore_merges"] = ignoreMerges, ["vocab"] = vocab, ["merges"] = new JsonArray("a b"),
            },
        };
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), root.ToJsonString());
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}""");
        File.WriteAllText(Path.Combine(dir, "config.json"), """{"bos_token_id": 258, "eos_token_id": [259, 10]}""");
        return dir;
    }

    [Fact]
    public void Hand_written_llama3_style_file_loads()
    {
        using var dir = NewTempDir();
        var tok = TokenizerLoader.Load(WriteHandMadeFile(dir.Path, ignoreMerges: true));
        Assert.Equal(260, tok.VocabSize);
        Assert.Equal(258, tok.BosTokenId);
        Assert.Equal(259, tok.EosTokenId);
        Assert.Equal([259, 10], tok.EosTokenIds);
        Assert.Equal([258, 256, 257], tok.Encode("ab abc"));               // BOS from the post-processor; " abc" whole
        Assert.Equal([256, 0xC3, 0xA9], tok.Encode("ab" + "e\u0301", false)); // NFC: e + combining acute -> é
        Assert.Equal("ab abc", tok.Decode([258, 256, 257, 259]));
        Assert.Equal("<|begin_of_text|>ab abc<|eot_id|>", tok.Decode([258, 256, 257, 259], skipSpecialTokens: false));
    }

    [Fact]
    public void Without_ignore_merges_whole_word_tokens_are_not_used()
    {
        using var dir = NewTempDir();
        var tok = TokenizerLoader.Load(WriteHandMadeFile(dir.Path, ignoreMerges: false));
        Assert.Equal([256, ' ', 256, 'c'], tok.Encode("ab abc", addBos: false));
    }

    [Fact]
    public void Written_files_are_standard_hf_layout()
    {
        using var dir = NewTempDir();
        var (vocab, merges) = ByteLevelBpeTokenizerFile.FromByteMerges(Merges(HelloWorldMerges));
        var ids = ByteLevelBpeTokenizerFile.Write(dir.Path, vocab, merges, ["<|endoftext|>"],
            new ByteLevelBpeFileOptions { EosToken = "<|endoftext|>", ChatTemplate = ChatTemplates.ChatMlJinja });
        Assert.Equal(265, ids["<|endoftext|>"]);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "tokenizer.json")))!;
        Assert.Equal("BPE", (string?)json["model"]!["type"]);
        Assert.Equal(264, (int)json["model"]!["vocab"]!["Ġworld"]!);
        Assert.Equal("Ġwor", (string?)json["model"]!["merges"]![8]![0]);
        Assert.Equal("<|endoftext|>", (string?)json["added_tokens"]![0]!["content"]);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "tokenizer_config.json")))!;
        Assert.Equal(ChatTemplates.ChatMlJinja, (string?)config["chat_template"]);
        Assert.Equal("<|endoftext|>", (string?)config["added_tokens_decoder"]!["265"]!["content"]);
        Assert.Equal(ChatTemplates.ChatMlJinja, Assert.IsType<JinjaChatTemplate>(TokenizerLoader.Load(dir.Path).ChatTemplate).Source);
    }

    [Fact]
    public void Vocabulary_without_all_byte_symbols_is_refused()
    {
        using var dir = NewTempDir();
        var vocab = new JsonObject { ["a"] = 0, ["b"] = 1 };
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer.json"), new JsonObject
        {
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocab, ["merges"] = new JsonArray() },
        }.ToJsonString());
        var e = Assert.Throws<InvalidDataException>(() => TokenizerLoader.Load(dir.Path));
        Assert.Contains("tokenizer.json", e.Message);
        Assert.Contains("byte", e.Message);
    }

    [Fact]
    public void Merge_with_unknown_token_is_refused()
    {
        using var dir = NewTempDir();
        var (vocab, merges) = ByteLevelBpeTokenizerFile.FromByteMerges(Merges("a|b"));
        ByteLevelBpeTokenizerFile.Write(dir.Path, vocab, [.. merges, ("x", "yz")], []);
        var e = Assert.Throws<InvalidDataException>(() => TokenizerLoader.Load(dir.Path));
        Assert.Contains("merge #1", e.Message);
    }
}
