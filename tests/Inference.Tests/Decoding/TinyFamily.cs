using System.Text;
using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Inference.Tests.Decoding;

/// <summary>
/// A tiny proxy-tuning family on disk: seeded random-weight Llama models saved as real HF directories, each with a
/// real byte-level BPE tokenizer (tokenizer.json + tokenizer_config.json). The expert has a ChatML template and
/// 3 extra (untrained) token rows, as chat models often do; "stranger" has a different tokenizer.
/// </summary>
internal sealed class TinyFamily : IDisposable
{
    public const int Vocab = 300;
    private static readonly string Corpus =
        "the cat sat on the mat. the dog ate the bone. a bird sang in the tree. question: what is the answer? answer: the answer is 42.";

    public string Root { get; }
    public Dictionary<string, string> Dirs { get; } = [];

    public TinyFamily()
    {
        Root = TinyHfModels.NewDir("tiny-family");
        Save("base", 11, Tokenizer(Corpus, 30, chat: false), Vocab);
        Save("anti", 22, Tokenizer(Corpus, 30, chat: false), Vocab);
        Save("expert", 33, Tokenizer(Corpus, 30, chat: true), Vocab + 3);
        Save("short", 44, Tokenizer(Corpus, 30, chat: false), Vocab, maxPos: 24);
        Save("stranger", 55, Tokenizer(new string(Corpus.Reverse().ToArray()), 30, chat: false), Vocab);
    }

    public ModelCatalog Catalog() =>
        new([.. Dirs.Select(kv => new ModelSource(kv.Key, kv.Value))], includeDemoModels: false);

    private void Save(string name, int seed, Action<string> writeTokenizer, int vocab, int maxPos = 128)
    {
        string dir = TinyHfModels.SaveInNewDir(TinyHfModels.Tiny(maxPos: maxPos) with { VocabSize = vocab }, name, seed);
        writeTokenizer(dir);
        Dirs[name] = dir;
    }

    /// <summary>A byte-level BPE with <paramref name="merges"/> merges learned greedily on <paramref name="text"/>.</summary>
    private static Action<string> Tokenizer(string text, int merges, bool chat) => dir =>
    {
        var seq = Encoding.UTF8.GetBytes(text).Select(b => new[] { b }).ToList();
        var learned = new List<(byte[], byte[])>();
        for (int m = 0; m < merges; m++)
        {
            var counts = new Dictionary<string, (int N, byte[] L, byte[] R)>();
            for (int i = 0; i + 1 < seq.Count; i++)
            {
                string key = Convert.ToHexString(seq[i]) + "|" + Convert.ToHexString(seq[i + 1]);
                counts[key] = counts.TryGetValue(key, out var c) ? (c.N + 1, c.L, c.R) : (1, seq[i], seq[i + 1]);
            }
            var best = counts.OrderByDescending(kv => kv.Value.N).ThenBy(kv => kv.Key, StringComparer.Ordinal).First().Value;
            learned.Add((best.L, best.R));
            var next = new List<byte[]>();
            for (int i = 0; i < seq.Count; i++)
                if (i + 1 < seq.Count && seq[i].AsSpan().SequenceEqual(best.L) && seq[i + 1].AsSpan().SequenceEqual(best.R)) { next.Add([.. best.L, .. best.R]); i++; }
                else next.Add(seq[i]);
            seq = next;
        }
        var (vocab, mergeList) = ByteLevelBpeTokenizerFile.FromByteMerges(learned);
        ByteLevelBpeTokenizerFile.Write(dir, vocab, mergeList, ["<s>", "</s>", "<|im_start|>", "<|im_end|>"], new ByteLevelBpeFileOptions
        {
            BosToken = "<s>", EosToken = "</s>", AddBosToken = true, ChatTemplate = chat ? ChatTemplates.ChatMlJinja : null,
        });
    };

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
        foreach (var dir in Dirs.Values) try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
    }
}
