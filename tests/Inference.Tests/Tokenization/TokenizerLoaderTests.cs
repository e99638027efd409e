using ProxyOrleans.Inference.Tokenization;
using Xunit;
using static ProxyOrleans.Inference.Tests.Tokenization.TokenizerTestData;

namespace ProxyOrleans.Inference.Tests.Tokenization;

public class TokenizerLoaderTests
{
    [Fact]
    public void Missing_directory_names_it()
    {
        var e = Assert.Throws<DirectoryNotFoundException>(() => TokenizerLoader.Load("/nonexistent/model-dir"));
        Assert.Contains("/nonexistent/model-dir", e.Message);
    }

    [Fact]
    public void Directory_without_tokenizer_files_names_both_files()
    {
        using var dir = NewTempDir();
        File.WriteAllText(Path.Combine(dir.Path, "config.json"), "{}");
        var e = Assert.Throws<FileNotFoundException>(() => TokenizerLoader.Load(dir.Path));
        Assert.Contains("tokenizer.model", e.Message);
        Assert.Contains("tokenizer.json", e.Message);
    }

    [Fact]
    public void Invalid_json_names_the_file()
    {
        using var dir = NewTempDir();
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer.json"), "{ \"model\": ");
        var e = Assert.Throws<InvalidDataException>(() => TokenizerLoader.Load(dir.Path));
        Assert.Contains("tokenizer.json", e.Message);
        Assert.Contains("not valid JSON", e.Message);
    }

    [Fact]
    public void Invalid_tokenizer_config_names_the_file()
    {
        using var dir = NewTempDir();
        var (vocab, merges) = ByteLevelBpeTokenizerFile.FromByteMerges(Merges("a|b"));
        ByteLevelBpeTokenizerFile.Write(dir.Path, vocab, merges, ["<eos>"]);
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer_config.json"), "not json");
        var e = Assert.Throws<InvalidDataException>(() => TokenizerLoader.Load(dir.Path));
        Assert.Contains("tokenizer_config.json", e.Message);
    }

    [Fact]
    public void Sentencepiece_style_tokenizer_json_without_byte_tokens_asks_for_the_real_files()
    {
        using var dir = NewTempDir();
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer.json"),
            """{"model": {"type": "BPE", "byte_fallback": true, "vocab": {"<unk>": 0, "▁a": 1}, "merges": []}, "decoder": {"type": "ByteFallback"}}""");
        var e = Assert.Throws<InvalidDataException>(() => TokenizerLoader.Load(dir.Path));
        Assert.Contains("<0x00>", e.Message);
        Assert.Contains("tokenizer.model", e.Message);
    }

    [Fact]
    public void Tokenizer_model_is_preferred_over_tokenizer_json()
    {
        using var dir = NewTempDir();
        File.Copy(Path.Combine(Llama2Dir, "tokenizer.model"), Path.Combine(dir.Path, "tokenizer.model"));
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer.json"), "{}"); // Llama 2 repos ship both
        Assert.Equal("sentencepiece", TokenizerLoader.Load(dir.Path).Kind);
    }

    [Fact]
    public void Unknown_configured_template_name_lists_the_names()
    {
        var e = Assert.Throws<ArgumentException>(() => TokenizerLoader.Load(Llama2Dir, chatTemplate: "vicuna"));
        Assert.Contains("llama2, llama3, chatml", e.Message);
    }

    [Fact]
    public void Chat_template_list_form_and_null_bos_are_read()
    {
        using var dir = NewTempDir();
        var (vocab, merges) = ByteLevelBpeTokenizerFile.FromByteMerges(Merges("a|b"));
        ByteLevelBpeTokenizerFile.Write(dir.Path, vocab, merges, ["<|im_start|>", "<|im_end|>"]);
        // Newer tokenizer_config.json files hold a list of named templates; "default" is the chat one.
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer_config.json"), $$$"""
            {
              "bos_token": null,
              "eos_token": {"content": "<|im_end|>", "special": true},
              "chat_template": [
                {"name": "tool_use", "template": "{{ 'tools' }}"},
                {"name": "default", "template": {{{System.Text.Json.JsonSerializer.Serialize(ChatTemplates.Qwen2Jinja)}}}}
              ]
            }
            """);
        var tok = TokenizerLoader.Load(dir.Path);
        Assert.Null(tok.BosTokenId);
        Assert.Equal(258, tok.EosTokenId);
        var template = Assert.IsType<JinjaChatTemplate>(tok.ChatTemplate);
        Assert.Equal(ChatTemplates.Qwen2Jinja, template.Source);
        Assert.Equal("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            template.Render([new ChatMessage("user", "Hi")]));
    }
}
