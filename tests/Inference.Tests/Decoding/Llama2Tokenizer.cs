using Microsoft.ML.Tokenizers;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Inference.Tests.Decoding;

/// <summary>
/// The real Llama 2 SentencePiece tokenizer (../shared/data/llama2-tokenizer) behind ITextTokenizer, for
/// decoding tests that need real text behaviour (spaces, multi-token words, byte fallback).
/// </summary>
internal sealed class Llama2Tokenizer : ITextTokenizer
{
    private static readonly Lazy<Llama2Tokenizer> Shared = new(() => new Llama2Tokenizer());
    private readonly SentencePieceTokenizer sp;

    private Llama2Tokenizer()
    {
        using var stream = File.OpenRead(TestPaths.SharedData("llama2-tokenizer", "tokenizer.model"));
        sp = LlamaTokenizer.Create(stream, addBeginOfSentence: true, addEndOfSentence: false);
    }

    public static Llama2Tokenizer Instance => Shared.Value;
    public int VocabSize => sp.Vocabulary.Count;
    public int? BosTokenId => sp.BeginningOfSentenceId;
    public int? EosTokenId => sp.EndOfSentenceId;
    public IChatTemplate? ChatTemplate => null;

    public int[] Encode(string text, bool addBos = true, bool parseSpecialTokens = false) =>
        [.. sp.EncodeToIds(text, addBos, false)];

    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = true) =>
        sp.Decode(ids.ToArray(), considerSpecialTokens: !skipSpecialTokens);
}
