using System.Text;

namespace ProxyOrleans.Inference.Tokenization;

/// <summary>
/// Built-in chat template families, used only when configured by name (an override for a model whose own template
/// the Jinja renderer cannot handle): each class reproduces, byte for byte, what HF's rendering of the family's
/// reference template gives. A model's own chat_template is rendered by <see cref="JinjaChatTemplate"/>.
/// </summary>
public static class ChatTemplates
{
    public const string Llama2 = "llama2";
    public const string Llama3 = "llama3";
    public const string ChatMl = "chatml";
    public static IReadOnlyList<string> Names { get; } = [Llama2, Llama3, ChatMl];

    /// <summary>meta-llama/Llama-2-7b-chat-hf's chat_template.</summary>
    public const string Llama2Jinja =
        "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}" +
        "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}" +
        "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
        "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}" +
        "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}" +
        "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

    /// <summary>meta-llama/Meta-Llama-3-8B-Instruct's chat_template.</summary>
    public const string Llama3Jinja =
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}" +
        "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

    /// <summary>Plain ChatML (no default system prompt).</summary>
    public const string ChatMlJinja =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    /// <summary>Qwen2-Instruct's ChatML, which adds a default system prompt when the conversation has none.</summary>
    public const string Qwen2Jinja =
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}" +
        "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    /// <summary>A family by name ("llama2", "llama3", "chatml"); bos/eos are the model's token strings.</summary>
    public static IChatTemplate ByName(string name, string? bosToken = null, string? eosToken = null) =>
        name.Trim().ToLowerInvariant() switch
        {
            Llama2 => new Llama2ChatTemplate(bosToken ?? "<s>", eosToken ?? "</s>"),
            Llama3 => new Llama3ChatTemplate(bosToken ?? "<|begin_of_text|>"),
            ChatMl => new ChatMlChatTemplate(),
            _ => throw new ArgumentException(
                $"Unknown chat template '{name}'. Configure one of: {string.Join(", ", Names)}.", nameof(name)),
        };

    /// <summary>The family a Jinja chat_template resembles by its markers, or null; only informative (rendering uses the template).</summary>
    public static string? DetectFamily(string jinja)
    {
        if (jinja.Contains("<|start_header_id|>") && jinja.Contains("<|eot_id|>")) return Llama3;
        if (jinja.Contains("<|im_start|>") && jinja.Contains("<|im_end|>")) return ChatMl;
        if (jinja.Contains("[INST]") && jinja.Contains("<<SYS>>")) return Llama2;
        return null;
    }

    /// <summary>
    /// The template for a tokenizer_config.json chat_template: the Jinja itself, rendered by <see cref="JinjaChatTemplate"/>.
    /// Throws <see cref="InvalidDataException"/> naming the construct and the override when it cannot be rendered.
    /// </summary>
    public static IChatTemplate FromJinja(string jinja, string? bosToken, string? eosToken, string source = "tokenizer_config.json") =>
        new JinjaChatTemplate(jinja, bosToken, eosToken, source);
}

/// <summary>Llama-2-chat: "&lt;s&gt;[INST] &lt;&lt;SYS&gt;&gt;\n{system}\n&lt;&lt;/SYS&gt;&gt;\n\n{user} [/INST] {answer} &lt;/s&gt;".</summary>
public sealed class Llama2ChatTemplate(string bosToken = "<s>", string eosToken = "</s>") : IChatTemplate
{
    public string Name => ChatTemplates.Llama2;
    public string? EndOfTurnToken => eosToken;

    /// <remarks>As the reference template, ignores <paramref name="addGenerationPrompt"/>: the prompt ends in " [/INST]".</remarks>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true)
    {
        var sb = new StringBuilder();
        int start = 0;
        string? system = null;
        if (messages.Count > 0 && messages[0].Role == "system") { system = messages[0].Content; start = 1; }
        for (int i = start; i < messages.Count; i++)
        {
            int index0 = i - start;
            var message = messages[i];
            if ((message.Role == "user") != (index0 % 2 == 0))
                throw new ArgumentException("Conversation roles must alternate user/assistant/user/assistant/...", nameof(messages));
            string content = index0 == 0 && system is not null
                ? "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + message.Content
                : message.Content;
            if (message.Role == "user") sb.Append(bosToken).Append("[INST] ").Append(PythonString.Strip(content)).Append(" [/INST]");
            else if (message.Role == "assistant") sb.Append(' ').Append(PythonString.Strip(content)).Append(' ').Append(eosToken);
        }
        return sb.ToString();
    }
}

/// <summary>Llama-3-Instruct: "&lt;|begin_of_text|&gt;&lt;|start_header_id|&gt;{role}&lt;|end_header_id|&gt;\n\n{content}&lt;|eot_id|&gt;".</summary>
public sealed class Llama3ChatTemplate(string bosToken = "<|begin_of_text|>") : IChatTemplate
{
    public string Name => ChatTemplates.Llama3;
    public string? EndOfTurnToken => "<|eot_id|>";

    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < messages.Count; i++)
        {
            if (i == 0) sb.Append(bosToken);
            sb.Append("<|start_header_id|>").Append(messages[i].Role).Append("<|end_header_id|>\n\n")
              .Append(PythonString.Strip(messages[i].Content)).Append("<|eot_id|>");
        }
        if (addGenerationPrompt) sb.Append("<|start_header_id|>assistant<|end_header_id|>\n\n");
        return sb.ToString();
    }
}

/// <summary>ChatML: "&lt;|im_start|&gt;{role}\n{content}&lt;|im_end|&gt;\n"; optionally Qwen2's default system turn.</summary>
public sealed class ChatMlChatTemplate(string? defaultSystemPrompt = null) : IChatTemplate
{
    public string Name => ChatTemplates.ChatMl;
    public string? EndOfTurnToken => "<|im_end|>";
    public string? DefaultSystemPrompt => defaultSystemPrompt;

    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < messages.Count; i++)
        {
            if (i == 0 && messages[0].Role != "system" && defaultSystemPrompt is not null)
                sb.Append("<|im_start|>system\n").Append(defaultSystemPrompt).Append("<|im_end|>\n");
            sb.Append("<|im_start|>").Append(messages[i].Role).Append('\n').Append(messages[i].Content).Append("<|im_end|>\n");
        }
        if (addGenerationPrompt) sb.Append("<|im_start|>assistant\n");
        return sb.ToString();
    }
}

public static class ChatTokenizerExtensions
{
    /// <summary>
    /// The expert's prompt ids, as HF's apply_chat_template(messages, tokenize=True): the rendered text is encoded
    /// without adding BOS (the template writes it where the family has one) and with special tokens parsed.
    /// </summary>
    public static int[] EncodeChat(this ITextTokenizer tokenizer, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true)
    {
        var template = tokenizer.ChatTemplate ?? throw new InvalidOperationException(
            $"This model has no chat template; configure one of: {string.Join(", ", ChatTemplates.Names)}.");
        return tokenizer.Encode(template.Render(messages, addGenerationPrompt), addBos: false, parseSpecialTokens: true);
    }
}
