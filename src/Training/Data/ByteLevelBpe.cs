using System.Text;
using System.Text.RegularExpressions;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Training.Data;

/// <summary>
/// Learns a byte-level BPE tokenizer as GPT-2 / Qwen2 define it (GPT-2 pre-tokenizer regex, bytes mapped to printable
/// characters) from the demo corpus; saved through <see cref="ByteLevelBpeTokenizerFile"/> as a Hugging Face
/// tokenizer.json, and read back (for training too) through <see cref="TokenizerLoader"/>, so training and serving
/// tokenize with the same code. Digits are never merged, so numbers are spelled digit by digit (as Llama does),
/// which makes addition learnable by small models.
/// </summary>
public sealed partial class ByteLevelBpe
{
    /// <summary>The one special token: pretraining puts it after every document, and a tuned reply ends with it.</summary>
    public const string EndOfText = "<|endoftext|>";
    public static readonly string[] SpecialTokens = [EndOfText];

    /// <summary>
    /// The demo family's chat template, in Tulu 2's manner (one of the paper's experts): turn markers written as plain
    /// text and a reply closed by the EOS token. Both bases read that token after every pretraining document, so its
    /// logit means the same thing in all four models and the expert − anti-expert shift can carry "end the reply here"
    /// (a ChatML <c>&lt;|im_end|&gt;</c> that no base ever read sat at a logit set only by how long each base trained).
    /// </summary>
    public const string ChatTemplate =
        "{% for message in messages %}{% if message['role'] == 'assistant' %}{{ '<|assistant|>\\n' + message['content'] + eos_token + '\\n' }}" +
        "{% else %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '\\n' }}{% endif %}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

    [GeneratedRegex(ByteLevelBpeTextTokenizer.Gpt2Pattern)]
    private static partial Regex Gpt2PreTokenizer();

    public IReadOnlyList<string> Vocab { get; }
    public IReadOnlyList<(string Left, string Right)> Merges { get; }
    readonly Dictionary<string, int> ids;

    public int VocabSize => Vocab.Count;
    public int Id(string token) => ids.TryGetValue(token, out int id) ? id : throw new KeyNotFoundException($"Token '{token}' is not in the vocabulary.");

    ByteLevelBpe(IReadOnlyList<string> vocab, IReadOnlyList<(string, string)> merges)
    {
        Vocab = vocab;
        Merges = merges;
        ids = vocab.Select((t, i) => (t, i)).ToDictionary(x => x.t, x => x.i);
    }

    static string ToByteChars(string text) => ByteLevel.Encode(Encoding.UTF8.GetBytes(text));

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
        var vocab = ByteLevel.ByteSymbols.ToList();
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
            if (!vocab.Contains(left + right)) vocab.Add(left + right); // one id per string, as HF trainers keep it
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

    /// <summary>
    /// Writes tokenizer.json and tokenizer_config.json (EOS &lt;|endoftext|&gt;, <see cref="ChatTemplate"/>, no BOS) through the
    /// shared writer; ids are this tokenizer's (bytes, merges, then the special tokens).
    /// </summary>
    public void Save(string directory)
    {
        var vocab = Vocab.Select((t, i) => (t, i)).Where(x => !SpecialTokens.Contains(x.t)).ToDictionary(x => x.t, x => x.i);
        var written = ByteLevelBpeTokenizerFile.Write(directory, vocab, Merges, SpecialTokens, new ByteLevelBpeFileOptions
        {
            EosToken = EndOfText,
            ChatTemplate = ChatTemplate,
            ModelMaxLength = 512,
        });
        foreach (var (token, id) in written)
            if (ids[token] != id) throw new InvalidOperationException($"Special token {token} was written with id {id}, expected {ids[token]}.");
    }
}
