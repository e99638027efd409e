using System.Text.Json;

namespace ProxyOrleans.Gateway.OpenAi;

/// <summary>OpenAI's response and chunk shapes, written field by field so they match the official API exactly.</summary>
public static class ResponseWriter
{
    /// <param name="Logprobs">Writes the choice's logprobs object (null: "logprobs": null).</param>
    /// <param name="Extra">Writes extension fields of the choice (proxy_logprobs).</param>
    public sealed record Choice(int Index, string Text, string FinishReason, Action<Utf8JsonWriter>? Logprobs = null, Action<Utf8JsonWriter>? Extra = null);

    public static void Usage(Utf8JsonWriter w, int prompt, int completion)
    {
        w.WritePropertyName("usage");
        w.WriteStartObject();
        w.WriteNumber("prompt_tokens", prompt);
        w.WriteNumber("completion_tokens", completion);
        w.WriteNumber("total_tokens", prompt + completion);
        w.WriteEndObject();
    }

    static void Header(Utf8JsonWriter w, string id, string obj, long created, string model)
    {
        w.WriteString("id", id);
        w.WriteString("object", obj);
        w.WriteNumber("created", created);
        w.WriteString("model", model);
        w.WriteNull("system_fingerprint");
    }

    public static void Completion(Utf8JsonWriter w, ApiEndpoint ep, string id, long created, string model,
        IReadOnlyList<Choice> choices, int promptTokens, int completionTokens)
    {
        w.WriteStartObject();
        Header(w, id, ep == ApiEndpoint.ChatCompletions ? "chat.completion" : "text_completion", created, model);
        w.WritePropertyName("choices");
        w.WriteStartArray();
        foreach (var c in choices)
        {
            w.WriteStartObject();
            w.WriteNumber("index", c.Index);
            if (ep == ApiEndpoint.ChatCompletions)
            {
                w.WritePropertyName("message");
                w.WriteStartObject();
                w.WriteString("role", "assistant");
                w.WriteString("content", c.Text);
                w.WriteNull("refusal");
                w.WriteEndObject();
            }
            else w.WriteString("text", c.Text);
            WriteLogprobs(w, c.Logprobs);
            w.WriteString("finish_reason", c.FinishReason);
            c.Extra?.Invoke(w);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        Usage(w, promptTokens, completionTokens);
        w.WriteEndObject();
    }

    /// <summary>
    /// One streamed chunk for one choice. Chat: <paramref name="role"/> only on a choice's first chunk;
    /// <paramref name="text"/> null with a finish reason for its last (empty delta).
    /// </summary>
    public static void Chunk(Utf8JsonWriter w, ApiEndpoint ep, string id, long created, string model,
        int index, string? text, string? finishReason, bool role = false, Action<Utf8JsonWriter>? extra = null,
        Action<Utf8JsonWriter>? logprobs = null)
    {
        w.WriteStartObject();
        Header(w, id, ep == ApiEndpoint.ChatCompletions ? "chat.completion.chunk" : "text_completion", created, model);
        w.WritePropertyName("choices");
        w.WriteStartArray();
        w.WriteStartObject();
        w.WriteNumber("index", index);
        if (ep == ApiEndpoint.ChatCompletions)
        {
            w.WritePropertyName("delta");
            w.WriteStartObject();
            if (role) w.WriteString("role", "assistant");
            if (text is not null) w.WriteString("content", text);
            w.WriteEndObject();
        }
        else w.WriteString("text", text ?? "");
        WriteLogprobs(w, logprobs);
        if (finishReason is null) w.WriteNull("finish_reason"); else w.WriteString("finish_reason", finishReason);
        extra?.Invoke(w); // extension fields of this choice (proxy_analysis)
        w.WriteEndObject();
        w.WriteEndArray();
        w.WriteEndObject();
    }

    static void WriteLogprobs(Utf8JsonWriter w, Action<Utf8JsonWriter>? logprobs)
    {
        w.WritePropertyName("logprobs");
        if (logprobs is null) w.WriteNullValue(); else logprobs(w);
    }

    /// <summary>The last chunk when stream_options.include_usage is set: no choices, the request's usage.</summary>
    public static void UsageChunk(Utf8JsonWriter w, ApiEndpoint ep, string id, long created, string model, int prompt, int completion)
    {
        w.WriteStartObject();
        Header(w, id, ep == ApiEndpoint.ChatCompletions ? "chat.completion.chunk" : "text_completion", created, model);
        w.WritePropertyName("choices");
        w.WriteStartArray();
        w.WriteEndArray();
        Usage(w, prompt, completion);
        w.WriteEndObject();
    }
}
