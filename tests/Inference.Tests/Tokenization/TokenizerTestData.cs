using System.Text.Json;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Inference.Tests.Tokenization;

/// <summary>Paths to shared test data (../shared beside the repo root) and small in-test tokenizers.</summary>
internal static class TokenizerTestData
{
    /// <summary>The Llama 2 SentencePiece tokenizer and reference cases (../shared/data/llama2-tokenizer).</summary>
    public static string Llama2Dir =>
        Path.GetDirectoryName(ProxyOrleans.TestSupport.TestEnvironment.SharedData("llama2-tokenizer", "tokenizer.model"))!;

    public sealed record Case(string Text, int[] Ids, int[] IdsWithBos, string Decoded);

    public static IReadOnlyList<Case> Llama2Cases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Llama2Dir, "cases.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => new Case(
            c.GetProperty("text").GetString()!,
            c.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
            c.GetProperty("ids_with_bos").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
            c.GetProperty("decoded").GetString()!)).ToList();
    }

    private static readonly Lazy<SentencePieceTextTokenizer> llama2 = new(() => (SentencePieceTextTokenizer)TokenizerLoader.Load(Llama2Dir));
    public static SentencePieceTextTokenizer Llama2 => llama2.Value;

    /// <summary>A fresh temporary directory, deleted by the returned handle.</summary>
    public static TempDir NewTempDir() => new();

    public sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("proxyorleans-tok-").FullName;
        public void Dispose() { try { Directory.Delete(Path, recursive: true); } catch (IOException) { } }
    }

    /// <summary>Merges of byte strings, written as "left|right" pairs of plain text for readability.</summary>
    public static IEnumerable<(byte[], byte[])> Merges(params string[] pairs) =>
        pairs.Select(p => p.Split('|')).Select(p => (System.Text.Encoding.UTF8.GetBytes(p[0]), System.Text.Encoding.UTF8.GetBytes(p[1])));
}
