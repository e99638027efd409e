using ProxyOrleans.Inference.Tokenization;
using Xunit;
using static ProxyOrleans.Inference.Tests.Tokenization.TokenizerTestData;

namespace ProxyOrleans.Inference.Tests.Tokenization;

public class StreamingDetokenizerTests
{
    private static List<string> Stream(ITextTokenizer tok, int[] prompt, int[] generated, out string flushed)
    {
        var d = new StreamingDetokenizer(tok, prompt);
        var chunks = generated.Select(d.Push).ToList();
        flushed = d.Flush();
        return chunks;
    }

    [Fact]
    public void First_generated_token_keeps_its_sentencepiece_space()
    {
        var tok = Llama2;
        int[] prompt = tok.Encode("Hello");                                 // [1, 15043]
        Assert.Equal([" world"], Stream(tok, prompt, [3186], out _));        // "▁world" after a prompt
        Assert.Equal(["world"], Stream(tok, [1], [3186], out _));            // at the start of the text, as HF decodes
        Assert.Equal(["Hello", " world", ""], Stream(tok, [], [15043, 3186, 2], out _)); // EOS adds nothing
    }

    [Fact]
    public void Multibyte_characters_split_into_byte_tokens_are_held_back_until_complete()
    {
        var tok = Llama2;
        var c = Llama2Cases().Single(x => x.Text.Contains("🚀"));
        int rocket = Array.IndexOf(c.Ids, 243); // <0xF0> <0x9F> <0x9A> <0x80>
        var chunks = Stream(tok, tok.Encode("Say:"), c.Ids, out string rest);
        Assert.Equal(["", "", ""], chunks.Skip(rocket).Take(3));
        Assert.Equal("🚀", chunks[rocket + 3]);
        Assert.All(chunks, s => Assert.DoesNotContain('\uFFFD', s));
        Assert.Equal(" " + c.Decoded, string.Concat(chunks) + rest);
        Assert.Equal("", rest);
    }

    [Fact]
    public void Streamed_text_equals_decoding_the_whole_sequence_for_every_reference_case()
    {
        var tok = Llama2;
        int[] prompt = tok.Encode("Prompt text\n");
        foreach (var c in Llama2Cases())
        {
            var chunks = Stream(tok, prompt, c.Ids, out string rest);
            string whole = tok.Decode([.. prompt, .. c.Ids]);
            string promptText = tok.Decode(prompt);
            Assert.Equal(whole[promptText.Length..], string.Concat(chunks) + rest);
            Assert.All(chunks, s => Assert.DoesNotContain('\uFFFD', s));
        }
    }

    [Fact]
    public void Incomplete_character_at_the_end_is_flushed_as_replacement()
    {
        var tok = Llama2;
        var d = new StreamingDetokenizer(tok, [1]);
        Assert.Equal("", d.Push(243));
        Assert.Equal("", d.Push(162));
        Assert.Equal("\uFFFD", d.Flush());
    }

    [Fact]
    public void Byte_level_bpe_streams_utf8_split_across_tokens()
    {
        using var dir = NewTempDir();
        var (vocab, merges) = ByteLevelBpeTokenizerFile.FromByteMerges(Merges("h|i"));
        ByteLevelBpeTokenizerFile.Write(dir.Path, vocab, merges, []);
        var tok = TokenizerLoader.Load(dir.Path);
        int[] ids = tok.Encode("hi é北");   // hi, Ġ, C3 A9, E5 8C 97
        Assert.Equal(7, ids.Length);
        var chunks = Stream(tok, tok.Encode("x"), ids, out string rest);
        Assert.Equal(["hi", " ", "", "é", "", "", "北"], chunks);
        Assert.Equal("", rest);
    }
}
