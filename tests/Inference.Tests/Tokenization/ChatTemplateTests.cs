using ProxyOrleans.Inference.Tokenization;
using Xunit;
using static ProxyOrleans.Inference.Tests.Tokenization.TokenizerTestData;

namespace ProxyOrleans.Inference.Tests.Tokenization;

/// <summary>
/// Expected strings are hand renderings of the reference Jinja templates (ChatTemplates.*Jinja, copied from
/// meta-llama/Llama-2-7b-chat-hf, meta-llama/Meta-Llama-3-8B-Instruct and Qwen/Qwen2-7B-Instruct).
/// </summary>
public class ChatTemplateTests
{
    private static ChatMessage System(string c) => new("system", c);
    private static ChatMessage User(string c) => new("user", c);
    private static ChatMessage Assistant(string c) => new("assistant", c);

    [Fact]
    public void Llama2_with_system_prompt()
    {
        var t = ChatTemplates.FromJinja(ChatTemplates.Llama2Jinja, "<s>", "</s>");
        Assert.Equal("<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST]",
            t.Render([System("You are a helpful assistant."), User("Hello!")]));
    }

    [Fact]
    public void Llama2_multi_turn_strips_each_turn_and_closes_answers_with_eos()
    {
        var t = ChatTemplates.ByName("llama2");
        Assert.Equal("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! How can I help? </s><s>[INST] What is 2+2? [/INST]",
            t.Render([System("Be brief."), User("Hi"), Assistant(" Hello! How can I help? "), User("What is 2+2?  \n")]));
        Assert.Equal("<s>[INST] Hi [/INST]", t.Render([User("  Hi \t")]));
        // The reference ignores add_generation_prompt.
        Assert.Equal("<s>[INST] Hi [/INST]", t.Render([User("Hi")], addGenerationPrompt: false));
    }

    [Fact]
    public void Llama2_strip_applies_to_the_whole_first_turn_not_to_the_system_prompt()
    {
        // strip() runs on '<<SYS>>\n' + system + '\n<</SYS>>\n\n' + user: the system prompt's own spaces stay.
        var t = ChatTemplates.ByName("llama2");
        Assert.Equal("<s>[INST] <<SYS>>\n  be brief\n\n<</SYS>>\n\nHi [/INST]", t.Render([System("  be brief\n"), User("Hi  ")]));
        // An empty system prompt still renders its block ('' != false in Jinja).
        Assert.Equal("<s>[INST] <<SYS>>\n\n<</SYS>>\n\nHi [/INST]", t.Render([System(""), User("Hi")]));
    }

    [Fact]
    public void Llama2_refuses_roles_out_of_order()
    {
        var t = ChatTemplates.ByName("llama2");
        var e = Assert.Throws<ArgumentException>(() => t.Render([User("a"), User("b")]));
        Assert.Contains("Conversation roles must alternate", e.Message);
        Assert.Throws<ArgumentException>(() => t.Render([Assistant("a")]));
    }

    [Fact]
    public void Llama3_trims_content_and_adds_generation_prompt()
    {
        var t = ChatTemplates.FromJinja(ChatTemplates.Llama3Jinja, "<|begin_of_text|>", "<|end_of_text|>");
        Assert.Equal(JinjaChatTemplate.TemplateName, t.Name);
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a bot.<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            t.Render([System("You are a bot."), User("  Hi\n")]));
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>",
            t.Render([User("Hi"), Assistant("Hello ")], addGenerationPrompt: false));
        Assert.Equal("<|eot_id|>", t.EndOfTurnToken);
    }

    [Fact]
    public void Chatml_keeps_content_verbatim()
    {
        var t = ChatTemplates.FromJinja(ChatTemplates.ChatMlJinja, null, null);
        Assert.Equal(
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n Hi <|im_end|>\n<|im_start|>assistant\n",
            t.Render([System("S"), User(" Hi ")]));
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n", t.Render([User("Hi")], addGenerationPrompt: false));
        Assert.Equal("<|im_end|>", t.EndOfTurnToken);
    }

    [Fact]
    public void Qwen2_chatml_adds_its_default_system_prompt()
    {
        var t = ChatTemplates.FromJinja(ChatTemplates.Qwen2Jinja, null, "<|im_end|>");
        Assert.Equal(JinjaChatTemplate.TemplateName, t.Name);
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            t.Render([User("Hi")]));
        Assert.Equal("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            t.Render([System("S"), User("Hi")]));
    }

    [Fact]
    public void Template_of_no_built_in_family_renders_as_written()
    {
        const string mistral = "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}" +
                               "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% endif %}{% endfor %}";
        Assert.Null(ChatTemplates.DetectFamily(mistral));
        var t = ChatTemplates.FromJinja(mistral, "<s>", "</s>");
        Assert.Equal("<s>[INST] Hi [/INST]Hello</s>[INST] More [/INST]", t.Render([User("Hi"), Assistant("Hello"), User("More")]));
        Assert.Equal("</s>", t.EndOfTurnToken);
    }

    [Fact]
    public void Unsupported_template_names_the_built_in_families()
    {
        var e = Assert.Throws<InvalidDataException>(() => ChatTemplates.FromJinja("{% include 'system.jinja' %}", "<s>", "</s>"));
        Assert.Contains("llama2, llama3, chatml", e.Message);
        Assert.Contains("include", e.Message);
    }

    [Fact]
    public void Loader_defers_unknown_template_error_and_honours_configured_name()
    {
        using var dir = NewTempDir();
        var (vocab, merges) = ByteLevelBpeTokenizerFile.FromByteMerges(Merges("a|b"));
        ByteLevelBpeTokenizerFile.Write(dir.Path, vocab, merges, ["<|im_start|>", "<|im_end|>"],
            new ByteLevelBpeFileOptions { ChatTemplate = "{% extends 'base.jinja' %}" });
        var tok = TokenizerLoader.Load(dir.Path); // base models never need the template
        var e = Assert.Throws<InvalidDataException>(() => tok.ChatTemplate);
        Assert.Contains("tokenizer_config.json", e.Message);
        Assert.Equal(ChatTemplates.ChatMl, TokenizerLoader.Load(dir.Path, chatTemplate: "chatml").ChatTemplate!.Name);
        Assert.Null(TokenizerLoader.Load(dir.Path, chatTemplate: "none").ChatTemplate);
    }

    [Fact]
    public void Loader_prefers_chat_template_jinja_as_transformers_does()
    {
        using var dir = NewTempDir();
        var (vocab, merges) = ByteLevelBpeTokenizerFile.FromByteMerges(Merges("a|b"));
        ByteLevelBpeTokenizerFile.Write(dir.Path, vocab, merges, ["<|im_start|>", "<|im_end|>"],
            new ByteLevelBpeFileOptions { ChatTemplate = ChatTemplates.ChatMlJinja });
        File.WriteAllText(Path.Combine(dir.Path, "chat_template.jinja"), "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}\n");
        var template = Assert.IsType<JinjaChatTemplate>(TokenizerLoader.Load(dir.Path).ChatTemplate);
        Assert.Equal("user: Hi\n", template.Render([User("Hi")]));
    }

    [Fact]
    public void Rendered_llama2_prompt_encodes_like_hf()
    {
        var tok = Llama2;
        string prompt = ChatTemplates.ByName("llama2").Render([User("Hello")]);
        // HF: apply_chat_template(tokenize=True) encodes without adding BOS and parses "<s>" as the BOS id.
        int[] ids = tok.Encode(prompt, addBos: false, parseSpecialTokens: true);
        Assert.Equal([1, 518, 25580, 29962, 15043, 518, 29914, 25580, 29962], ids);
        var withTemplate = TokenizerLoader.Load(Llama2Dir, chatTemplate: "llama2");
        Assert.Equal(ids, withTemplate.EncodeChat([User("Hello")]));
        Assert.Throws<InvalidOperationException>(() => tok.EncodeChat([User("Hello")])); // the bare directory has no template
    }

    [Fact]
    public void Chatml_prompt_encodes_special_tokens_once_and_without_bos()
    {
        using var dir = NewTempDir();
        var (vocab, merges) = ByteLevelBpeTokenizerFile.FromByteMerges(Merges("h|i"));
        ByteLevelBpeTokenizerFile.Write(dir.Path, vocab, merges, ["<s>", "<|im_start|>", "<|im_end|>"],
            new ByteLevelBpeFileOptions { BosToken = "<s>", AddBosToken = true, ChatTemplate = ChatTemplates.ChatMlJinja });
        var tok = TokenizerLoader.Load(dir.Path);
        int start = 258, end = 259; // 256 = "hi", 257 = <s>
        Assert.Equal([start, 'u', 's', 'e', 'r', '\n', 256, end, '\n', start, 'a', 's', 's', 'i', 's', 't', 'a', 'n', 't', '\n'],
            tok.EncodeChat([User("hi")]));
    }
}
