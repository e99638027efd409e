using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Inference.Tests.Decoding;

/// <summary>The real Llama 2 SentencePiece tokenizer (../shared/data/llama2-tokenizer), loaded once.</summary>
internal static class Llama2Tokenizer
{
    private static readonly Lazy<ITextTokenizer> Shared = new(() => TokenizerLoader.Load(ProxyOrleans.TestSupport.TestEnvironment.SharedData("llama2-tokenizer")));
    public static ITextTokenizer Instance => Shared.Value;
}
