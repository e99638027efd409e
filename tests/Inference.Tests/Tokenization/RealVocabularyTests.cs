using System.Diagnostics;
using ProxyOrleans.Inference.Tokenization;
using Xunit;
using Xunit.Abstractions;
using static ProxyOrleans.Inference.Tests.Tokenization.References;

namespace ProxyOrleans.Inference.Tests.Tokenization;

/// <summary>
/// Our tokenizers against Hugging Face's own (the Rust tokenizers crate through Tokenizers.DotNet), id for id, on
/// the real vocabularies of the reference families and on strings chosen to break tokenizers.
/// </summary>
public class RealVocabularyTests(ITestOutputHelper output)
{
    public static readonly string[] HardStrings =
    [
        "Hello world",
        "Hello, world! How are you today?",
        " leading space", "trailing space ", "  two leading", "a  b   c    d", "\t\ttabs\tand\tspaces  \t",
        "\n", "\n\n\n", "line1\nline2\r\nline3\rline4", "  \n  \n", "end with newline\n", " ",
        "1234567890", "3.14159 2.71828", "1,000,000.00", "v1.2.3-rc4", "0x1F 0b1010 1e-9", "12345678901234567890",
        "naïve café résumé Ångström façade", "Straße ÄÖÜ äöü ß", "Ελληνικά Русский язык Українська",
        "日本語のテキストです。中文文本。한국어 텍스트", "العربية עברית", "हिन्दी বাংলা தமிழ்", "ภาษาไทย ລາວ",
        "emoji 🚀🔥👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️ ✅", "😀😃😄😁😆😅😂🤣", "math ∑∫∂√∞≈≠≤≥ ±×÷ →⇒ ∀∃",
        "zero\u200Bwidth\u200Djoiner\uFEFFbom", "nbsp\u00A0here and\u2003em space", "combining e\u0301 a\u0308 n\u0303",
        "I'm sure you'll see we've done it, they'd say it's 'quoted' and \"double\"", "DON'T SHOUT, I'LL WE'RE",
        "def f(x):\n    return x ** 2  # square\n\nprint(f(3))\n",
        "public static int Main(string[] args)\n{\n\tConsole.WriteLine(\"Hi\");\n\treturn 0;\n}",
        "<html><body class=\"x\">&amp; &lt;tag&gt;</body></html>", "https://example.com/path?q=1&r=two#frag",
        "{\"key\": [1, 2, {\"nested\": null}], \"ok\": true}", "SELECT * FROM t WHERE a >= 10 AND b <> 'x';",
        "$$\\frac{a}{b}$$ \\alpha_{i}^{2}", "snake_case camelCase PascalCase kebab-case SCREAMING_CASE",
        "!!!???...,,,;;;:::", "----====____****####", "a\u0000b\u0001c\u007f",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕋𝕖𝕩𝕥", "𠀀𠀁𠀂 rare CJK extension B", "🧑🏽‍💻 and 🏳️‍🌈",
        "x𝔘y 𠀀字 a𝕋. '𝔘s 🚀x𝔘", "(𝔘) \"𠀀\" -𝕋-",
        "<s>[INST] hi [/INST]", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "<bos><start_of_turn>user\nHi<end_of_turn>\n",
        "text<|endoftext|>more", "<think>\nreasoning\n</think>\n\nanswer",
    ];

    // The family's directory as our loader reads it: tokenizer.json (byte-level BPE for Llama 3 and Qwen3,
    // SentencePiece-style BPE for Llama 2 and Gemma 3, whose packages ship no tokenizer.model) and tokenizer_config.json.
    private static ITextTokenizer Ours(string family) => TokenizerLoader.Load(FamilyDir(family));

    private static Tokenizers.DotNet.Tokenizer Hf(string family) => new(vocabPath: Path.Combine(FamilyDir(family), "tokenizer.json"));

    public static TheoryData<string> ComparedFamilies => new() { "llama2", "llama3", "llama3_1", "qwen3", "gemma3" };

    [Theory]
    [MemberData(nameof(ComparedFamilies))]
    public void Ids_equal_hugging_face_tokenizers_on_hard_strings(string family)
    {
        var ours = Ours(family);
        using var hf = Hf(family);
        var mismatches = new List<string>();
        foreach (string text in HardStrings)
        {
            // HF's encode adds the post-processor's BOS and always matches special tokens written in the text.
            int[] expected = hf.Encode(text).Select(x => (int)x).ToArray();
            int[] actual = ours.Encode(text, addBos: true, parseSpecialTokens: true);
            if (!expected.SequenceEqual(actual))
                mismatches.Add($"{Show(text)}\n  hf:   [{string.Join(", ", expected)}]\n  ours: [{string.Join(", ", actual)}]");
        }
        Assert.True(mismatches.Count == 0, $"{family}: {mismatches.Count} of {HardStrings.Length} strings differ:\n" + string.Join("\n", mismatches));
    }

    [Theory]
    [MemberData(nameof(ComparedFamilies))]
    public void Decoding_equals_hugging_face_tokenizers(string family)
    {
        var ours = Ours(family);
        using var hf = Hf(family);
        var mismatches = new List<string>();
        foreach (string text in HardStrings)
        {
            uint[] ids = hf.Encode(text);
            // HF's decode skips special tokens, as ours does by default.
            string expected = hf.Decode(ids), actual = ours.Decode(ids.Select(x => (int)x).ToArray());
            if (expected != actual) mismatches.Add($"{Show(text)}\n  hf:   {Show(expected)}\n  ours: {Show(actual)}");
        }
        Assert.True(mismatches.Count == 0, $"{family}: {mismatches.Count} of {HardStrings.Length} decodings differ:\n" + string.Join("\n", mismatches));
    }

    [Theory]
    [MemberData(nameof(ComparedFamilies))]
    public void Streaming_each_id_gives_the_text_hugging_face_decodes(string family)
    {
        // What the gateway streams: the BOS prompt as context, then each id of the text pushed one by one.
        var ours = Ours(family);
        using var hf = Hf(family);
        var mismatches = new List<string>();
        foreach (string text in HardStrings)
        {
            int[] ids = hf.Encode(text).Select(x => (int)x).ToArray();
            int promptLength = ids.Length > 0 && ids[0] == ours.BosTokenId ? 1 : 0;
            var detok = new StreamingDetokenizer(ours, ids[..promptLength]);
            var streamed = new System.Text.StringBuilder();
            foreach (int id in ids[promptLength..]) streamed.Append(detok.Push(id));
            streamed.Append(detok.Flush());
            string expected = hf.Decode(ids.Select(x => (uint)x).ToArray());
            if (streamed.ToString() != expected) mismatches.Add($"{Show(text)}\n  hf:       {Show(expected)}\n  streamed: {Show(streamed.ToString())}");
        }
        Assert.True(mismatches.Count == 0, $"{family}: {mismatches.Count} of {HardStrings.Length} streams differ:\n" + string.Join("\n", mismatches));
    }

    [Theory]
    [MemberData(nameof(ComparedFamilies))]
    public void Vocabulary_has_the_reference_size_and_special_tokens(string family)
    {
        var ours = Ours(family);
        using var hf = Hf(family);
        var config = FamilyConfig(family);
        if (TokenString(config, "bos_token") is string bos)
            Assert.Equal(hf.Encode(bos).Select(x => (int)x).Last(), ours.BosTokenId);
        if (TokenString(config, "eos_token") is string eos)
            Assert.Equal(hf.Encode(eos).Select(x => (int)x).Last(), ours.EosTokenId);
        // Every id decodes as HF decodes it alone (byte tokens and special tokens aside, which decode to nothing).
        var rng = new Random(14);
        int differing = 0;
        for (int n = 0; n < 2000; n++)
        {
            int id = rng.Next(ours.VocabSize);
            string expected = hf.Decode([(uint)id]), actual = ours.Decode([id]);
            if (expected != actual && differing++ < 5) output.WriteLine($"id {id}: hf {Show(expected)} ours {Show(actual)}");
        }
        Assert.Equal(0, differing);
    }

    [Theory]
    [MemberData(nameof(ComparedFamilies))]
    public void Long_document_ids_equal_hugging_face_tokenizers_and_speed_is_reported(string family)
    {
        // ~150 KB of mixed prose, tables, code and the hard strings: the repository's docs twice.
        string docs = string.Join("\n", Directory.GetFiles(Path.Combine(ProxyOrleans.Client.Benchmarks.RepositoryLayout.Root(), "docs"), "*.md")
            .Order(StringComparer.Ordinal).Select(File.ReadAllText));
        string text = string.Concat(Enumerable.Repeat(docs + string.Join("\n", HardStrings), 2));
        var load = Stopwatch.StartNew();
        var ours = Ours(family);
        double oursLoadMs = load.Elapsed.TotalMilliseconds;
        load.Restart();
        using var hf = Hf(family);
        double hfLoadMs = load.Elapsed.TotalMilliseconds;

        int[] expected = hf.Encode(text).Select(x => (int)x).ToArray();
        int[] actual = ours.Encode(text, addBos: true, parseSpecialTokens: true);
        int firstDifference = Enumerable.Range(0, Math.Min(expected.Length, actual.Length)).FirstOrDefault(i => expected[i] != actual[i], -1);
        Assert.True(expected.SequenceEqual(actual),
            $"{family}: {actual.Length} ids vs HF's {expected.Length}, first difference at {firstDifference}");

        // Median of five timed runs each, after the warm-up above (JIT, caches).
        double Median(Func<int> run) => Enumerable.Range(0, 5).Select(_ => { var sw = Stopwatch.StartNew(); run(); return sw.Elapsed.TotalMilliseconds; })
            .Order().ElementAt(2);
        double oursMs = Median(() => ours.Encode(text, addBos: true, parseSpecialTokens: true).Length);
        double hfMs = Median(() => hf.Encode(text).Length);
        output.WriteLine($"{family}: {text.Length:N0} chars -> {actual.Length:N0} ids, identical. Encode: ours {oursMs:F1} ms " +
                         $"({text.Length / oursMs / 1000:F2} M chars/s), HF {hfMs:F1} ms ({text.Length / hfMs / 1000:F2} M chars/s). " +
                         $"Load: ours {oursLoadMs:F0} ms, HF {hfLoadMs:F0} ms.");
    }

    private static string Show(string s) => System.Text.Json.JsonSerializer.Serialize(s);
}
