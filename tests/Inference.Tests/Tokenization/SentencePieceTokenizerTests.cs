using ProxyOrleans.Inference.Tokenization;
using Xunit;
using static ProxyOrleans.Inference.Tests.Tokenization.TokenizerTestData;

namespace ProxyOrleans.Inference.Tests.Tokenization;

public class SentencePieceTokenizerTests
{
    public static TheoryData<int> CaseIndexes()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < Llama2Cases().Count; i++) data.Add(i);
        return data;
    }

    [Theory]
    [MemberData(nameof(CaseIndexes))]
    public void Encode_and_decode_equal_the_reference_sentencepiece(int index)
    {
        var c = Llama2Cases()[index];
        var tok = Llama2;
        Assert.Equal(c.Ids, tok.Encode(c.Text, addBos: false));
        Assert.Equal(c.IdsWithBos, tok.Encode(c.Text, addBos: true));
        Assert.Equal(c.Decoded, tok.Decode(c.Ids));
        Assert.Equal(c.Decoded, tok.Decode(c.IdsWithBos)); // BOS is special: skipped
    }

    [Fact]
    public void Reference_file_has_the_cases_we_rely_on()
    {
        var cases = Llama2Cases();
        Assert.True(cases.Count >= 10);
        Assert.Contains(cases, c => c.Ids.Any(id => id >= 3 && id <= 258)); // byte-fallback tokens (emoji)
        Assert.Contains(cases, c => c.Text.StartsWith(' '));
    }

    [Fact]
    public void Special_ids_and_sizes_come_from_the_model()
    {
        var tok = Llama2;
        Assert.Equal("sentencepiece", tok.Kind);
        Assert.Equal(32000, tok.VocabSize);
        Assert.Equal(1, tok.BosTokenId);
        Assert.Equal(2, tok.EosTokenId);
        Assert.Equal([2], tok.EosTokenIds);
        Assert.Equal("▁Hello", tok.IdToToken(15043));
        Assert.Equal("<0xF0>", tok.IdToToken(243));
        Assert.Equal("</s>", tok.IdToToken(2));
        Assert.Null(tok.IdToToken(32000));
        Assert.Equal(15043, tok.Vocabulary["▁Hello"]);
    }

    [Fact]
    public void Special_tokens_in_text_are_parsed_only_when_asked()
    {
        var tok = Llama2;
        // As HF's Llama tokenizer: the text after a special token gets SentencePiece's "▁" prefix ("▁[" = 518).
        Assert.Equal([1, 518, 25580, 29962], tok.Encode("<s>[INST]", addBos: false, parseSpecialTokens: true));
        int[] plain = tok.Encode("<s>[INST]", addBos: false);
        Assert.DoesNotContain(1, plain);
        Assert.Equal("<s>[INST]", tok.Decode(plain));
        // A turn boundary of the Llama-2 chat format.
        int[] turn = tok.Encode("Hi</s><s>[INST]", addBos: false, parseSpecialTokens: true);
        Assert.Equal([tok.Encode("Hi", false)[0], 2, 1, 518, 25580, 29962], turn);
    }

    [Fact]
    public void Decode_keeps_special_tokens_when_asked()
    {
        var tok = Llama2;
        int[] ids = [1, 15043, 3186, 2];
        Assert.Equal("Hello world", tok.Decode(ids));
        string kept = tok.Decode(ids, skipSpecialTokens: false);
        Assert.StartsWith("<s>", kept);
        Assert.EndsWith("</s>", kept);
        Assert.Contains("Hello world", kept);
    }

    [Fact]
    public void Decode_rejects_ids_outside_the_vocabulary()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Llama2.Decode([15043, 32000]));
        Assert.Contains("32000", e.Message);
    }

    [Fact]
    public void Loader_reads_tokenizer_config_bos_and_template()
    {
        using var dir = NewTempDir();
        File.Copy(Path.Combine(Llama2Dir, "tokenizer.model"), Path.Combine(dir.Path, "tokenizer.model"));
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer_config.json"), $$"""
            {
              "add_bos_token": false,
              "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false, "normalized": false, "rstrip": false, "single_word": false},
              "eos_token": "</s>",
              "chat_template": {{System.Text.Json.JsonSerializer.Serialize(ChatTemplates.Llama2Jinja)}}
            }
            """);
        File.WriteAllText(Path.Combine(dir.Path, "config.json"), """{"bos_token_id": 1, "eos_token_id": [2, 13]}""");
        var tok = TokenizerLoader.Load(dir.Path);
        Assert.Equal([15043], tok.Encode("Hello", addBos: true)); // add_bos_token false
        Assert.Equal(2, tok.EosTokenId);
        Assert.Equal([2, 13], tok.EosTokenIds);
        Assert.Equal(JinjaChatTemplate.TemplateName, tok.ChatTemplate!.Name); // the file's own template, rendered as Jinja
        Assert.Equal("<s>[INST] Hello [/INST]", tok.ChatTemplate.Render([new ChatMessage("user", "Hello")]));
    }

    [Fact]
    public void Corrupt_tokenizer_model_is_a_clear_error()
    {
        using var dir = NewTempDir();
        File.WriteAllBytes(Path.Combine(dir.Path, "tokenizer.model"), [1, 2, 3, 4, 5, 6, 7, 8]);
        var e = Assert.Throws<InvalidDataException>(() => TokenizerLoader.Load(dir.Path));
        Assert.Contains("tokenizer.model", e.Message);
        Assert.Contains("Replace it", e.Message);
    }
}
