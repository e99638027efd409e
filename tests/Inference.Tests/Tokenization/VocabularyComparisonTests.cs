using ProxyOrleans.Inference.Tokenization;
using Xunit;
using static ProxyOrleans.Inference.Tests.Tokenization.TokenizerTestData;

namespace ProxyOrleans.Inference.Tests.Tokenization;

public class VocabularyComparisonTests
{
    private static TextTokenizerBase Make(TempDir dir, string[] merges, string[] specials)
    {
        var (vocab, m) = ByteLevelBpeTokenizerFile.FromByteMerges(Merges(merges));
        ByteLevelBpeTokenizerFile.Write(dir.Path, vocab, m, specials);
        return TokenizerLoader.Load(dir.Path);
    }

    [Fact]
    public void Same_vocabulary_has_the_same_fingerprint()
    {
        using var a = NewTempDir();
        using var b = NewTempDir();
        var x = Make(a, ["a|b", "b|c"], ["<eos>"]);
        var y = Make(b, ["a|b", "b|c"], ["<eos>"]);
        Assert.Equal(TokenizerVocabulary.Fingerprint(x), TokenizerVocabulary.Fingerprint(y));
        var cmp = TokenizerVocabulary.Compare(x, y);
        Assert.True(cmp.SharedIdsMatch);
        Assert.Equal(259, cmp.SharedCount);
        Assert.Equal(64, TokenizerVocabulary.Fingerprint(x).Length);
    }

    [Fact]
    public void The_check_fingerprint_is_equal_exactly_when_the_vocabulary_check_has_nothing_to_compare()
    {
        using var a = NewTempDir();
        using var b = NewTempDir();
        using var c = NewTempDir();
        var x = Make(a, ["a|b", "b|c"], ["<eos>"]);
        var y = Make(b, ["a|b", "b|c"], ["<eos>"]);
        ProxyOrleans.Inference.Decoding.VocabularyCheck.Ensure("x", x.VocabSize, x, "y", y.VocabSize, y, "expert");
        Assert.Equal(ProxyOrleans.Inference.Decoding.VocabularyCheck.Fingerprint(x), ProxyOrleans.Inference.Decoding.VocabularyCheck.Fingerprint(y));

        // The same token strings with a BOS: the token fingerprint cannot tell them apart, the check can, so the
        // check's fingerprint must differ (else a coordinator would skip the check and prefill other ids).
        var (vocab, m) = ByteLevelBpeTokenizerFile.FromByteMerges(Merges(["a|b", "b|c"]));
        ByteLevelBpeTokenizerFile.Write(c.Path, vocab, m, ["<eos>"], new ByteLevelBpeFileOptions { BosToken = "<eos>" });
        var z = TokenizerLoader.Load(c.Path);
        Assert.Equal(TokenizerVocabulary.Fingerprint(x), TokenizerVocabulary.Fingerprint(z));
        Assert.NotEqual(x.BosTokenId, z.BosTokenId);
        Assert.Throws<InvalidOperationException>(() => ProxyOrleans.Inference.Decoding.VocabularyCheck.Ensure("x", x.VocabSize, x, "z", z.VocabSize, z, "expert"));
        Assert.NotEqual(ProxyOrleans.Inference.Decoding.VocabularyCheck.Fingerprint(x), ProxyOrleans.Inference.Decoding.VocabularyCheck.Fingerprint(z));
    }

    [Fact]
    public void Extra_tokens_at_the_end_are_reported_and_can_be_ignored()
    {
        using var a = NewTempDir();
        using var b = NewTempDir();
        var baseTok = Make(a, ["a|b"], ["<eos>"]);
        var expert = Make(b, ["a|b"], ["<eos>", "<pad>"]);
        var cmp = TokenizerVocabulary.Compare(baseTok, expert);
        Assert.True(cmp.SharedIdsMatch);
        Assert.Equal(1, cmp.ExtraInSecond);
        Assert.NotEqual(TokenizerVocabulary.Fingerprint(baseTok), TokenizerVocabulary.Fingerprint(expert));
        Assert.Equal(TokenizerVocabulary.Fingerprint(baseTok), TokenizerVocabulary.Fingerprint(expert, baseTok.VocabSize));
    }

    [Fact]
    public void Different_vocabularies_are_detected_with_the_first_differing_id()
    {
        using var a = NewTempDir();
        using var b = NewTempDir();
        var x = Make(a, ["a|b", "b|c"], []);
        var y = Make(b, ["b|c", "a|b"], []);
        Assert.NotEqual(TokenizerVocabulary.Fingerprint(x), TokenizerVocabulary.Fingerprint(y));
        var cmp = TokenizerVocabulary.Compare(x, y);
        Assert.False(cmp.SharedIdsMatch);
        Assert.Equal(2, cmp.MismatchCount);
        Assert.Equal(256, cmp.FirstMismatchId);
        Assert.Equal("ab", cmp.FirstMismatchFirst);
        Assert.Equal("bc", cmp.FirstMismatchSecond);
        Assert.Contains("id 256", cmp.Describe());
        // And a SentencePiece vocabulary is nothing like a byte-level one.
        Assert.False(TokenizerVocabulary.Compare(Llama2, x).SharedIdsMatch);
    }
}
