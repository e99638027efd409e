using System.Text;
using System.Text.Json;
using ProxyOrleans.Gateway.Generation;

namespace ProxyOrleans.Gateway.OpenAi;

/// <summary>
/// Log-probabilities in OpenAI's shapes. Requests: completions' <c>logprobs: N</c> (0..5) and <c>echo</c>; chat's
/// <c>logprobs: true</c> with <c>top_logprobs: N</c> (0..20); the extension <c>proxy.model_logprobs: k</c> (1..20). Every
/// score is the log-softmax of the combination's logits before temperature, top-k and top-p (docs/gateway.md).
/// Responses: completions' choices[].logprobs {tokens, token_logprobs, top_logprobs, text_offset}; chat's
/// choices[].logprobs {content: [{token, logprob, bytes, top_logprobs}], refusal}; choices[].proxy_logprobs.
/// </summary>
public static class LogprobOptions
{
    public const int MaxCompletionLogprobs = 5, MaxTopLogprobs = 20;
    public const string ModelLogprobsField = "model_logprobs", ModelLogprobsOutput = "proxy_logprobs";

    /// <summary>The request with the scores it asks for, or unchanged; bad values are a 400 naming the field.</summary>
    public static ParsedRequest Apply(JsonElement root, ParsedRequest req)
    {
        int? logprobs = null;
        bool echo = false;
        if (req.Endpoint == ApiEndpoint.Completions)
        {
            if (Get(root, "logprobs") is { } lp && lp.ValueKind != JsonValueKind.False) // false: off, as some clients send it
                logprobs = Count(lp, "logprobs", 0, MaxCompletionLogprobs, "an integer from 0 to 5 (top alternatives per token; null: no logprobs)");
            if (Get(root, "echo") is { } e)
                echo = e.ValueKind switch
                {
                    JsonValueKind.True => true, JsonValueKind.False => false,
                    _ => throw ApiError.Invalid("echo", "'echo' must be true or false.", "invalid_type"),
                };
        }
        else
        {
            bool on = Get(root, "logprobs") is { } lp && lp.ValueKind switch
            {
                JsonValueKind.True => true, JsonValueKind.False => false,
                _ => throw ApiError.Invalid("logprobs", "'logprobs' must be true or false (with 'top_logprobs' for alternatives).", "invalid_type"),
            };
            int? top = Get(root, "top_logprobs") is { } t ? Count(t, "top_logprobs", 0, MaxTopLogprobs, "an integer from 0 to 20") : null;
            if (top > 0 && !on) // 0 without logprobs asks for nothing: accepted, as clients sending defaults do
                throw ApiError.Invalid("top_logprobs", "'top_logprobs' needs \"logprobs\": true.");
            if (on) logprobs = top ?? 0;
        }

        int modelLogprobs = 0;
        if (Get(root, "proxy") is { ValueKind: JsonValueKind.Object } proxy)
        {
            if (Get(proxy, ModelLogprobsField) is { } m)
                modelLogprobs = Count(m, $"proxy.{ModelLogprobsField}", 1, MaxTopLogprobs, "an integer from 1 to 20 (top tokens per model)");
            // A scored prompt is read as sent by every model: a prompt option asked for in the same request could not apply.
            if (echo && logprobs is not null)
                foreach (var option in new[] { "answer_cue", "expert_response_prefix" })
                    if (Get(proxy, option) is not null)
                        throw ApiError.Invalid($"proxy.{option}",
                            $"'proxy.{option}' cannot apply to a scored prompt: with echo and logprobs every model reads the prompt as sent. " +
                            "Write the cue into the prompt, or drop echo.");
        }

        if (logprobs is null && !echo && modelLogprobs == 0) return req;
        var generation = req.Generation with
        {
            Logprobs = logprobs,
            // Echo without logprobs only repeats the prompt's text: nothing to score.
            PromptLogprobs = echo ? logprobs : null,
        };
        // Each expert's and anti-expert's own logits are needed, not a co-hosted pair's difference (as for proxy_analysis).
        if (modelLogprobs > 0) generation = generation with { TopTokens = Math.Max(generation.TopTokens, modelLogprobs), CoHostedPairs = false };
        return req with { Generation = generation, Echo = echo, ModelLogprobs = modelLogprobs };
    }

    static JsonElement? Get(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    static int Count(JsonElement v, string field, int min, int max, string what)
    {
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out var n))
            throw ApiError.Invalid(field, $"'{field}' must be {what}; got {Shorten(v.GetRawText())}.", "invalid_type");
        if (n < min || n > max)
            throw ApiError.Invalid(field, $"'{field}' must be {what}; got {n}.");
        return n;
    }

    static string Shorten(string s) => s.Length <= 32 ? s : s[..32] + "…";

    /// <summary>
    /// Completions' logprobs object over <paramref name="tokens"/> (an unscored entry, a prompt's first token, is written as null).
    /// text_offset counts characters of the token strings before each token from <paramref name="offset"/> on, as vLLM
    /// does; top_logprobs maps token strings to log-probabilities and always includes the chosen token, as OpenAI does.
    /// </summary>
    public static void WriteCompletion(Utf8JsonWriter w, IReadOnlyList<TokenLogprobsSpec> tokens, int offset)
    {
        w.WriteStartObject();
        w.WriteStartArray("tokens");
        foreach (var t in tokens) w.WriteStringValue(t.Chosen.Text);
        w.WriteEndArray();
        w.WriteStartArray("token_logprobs");
        foreach (var s in tokens) if (!s.IsScored) w.WriteNullValue(); else WriteNumber(w, s.Chosen.Logprob);
        w.WriteEndArray();
        w.WriteStartArray("top_logprobs");
        foreach (var s in tokens)
        {
            if (!s.IsScored) { w.WriteNullValue(); continue; }
            w.WriteStartObject();
            var written = new HashSet<string>(StringComparer.Ordinal);
            foreach (var c in s.Top.Append(s.Chosen))
                if (written.Add(c.Text)) { w.WritePropertyName(c.Text); WriteNumber(w, c.Logprob); }
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("text_offset");
        foreach (var t in tokens)
        {
            w.WriteNumberValue(offset);
            offset += t.Chosen.Text.Length;
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>Characters the tokens' strings take: the text_offset after them.</summary>
    public static int Length(IEnumerable<TokenLogprobsSpec> tokens) => tokens.Sum(t => t.Chosen.Text.Length);

    /// <summary>Chat's logprobs object: {"content": [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}], "refusal": null}.</summary>
    public static void WriteChat(Utf8JsonWriter w, IEnumerable<TokenLogprobsSpec> tokens)
    {
        w.WriteStartObject();
        w.WriteStartArray("content");
        foreach (var s in tokens)
        {
            w.WriteStartObject();
            WriteEntry(w, s.Chosen);
            w.WriteStartArray("top_logprobs");
            foreach (var c in s.Top)
            {
                w.WriteStartObject();
                WriteEntry(w, c);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteNull("refusal");
        w.WriteEndObject();
    }

    static void WriteEntry(Utf8JsonWriter w, LogprobSpec c)
    {
        w.WriteString("token", c.Text);
        w.WritePropertyName("logprob");
        WriteNumber(w, c.Logprob);
        w.WriteStartArray("bytes");
        foreach (var b in Encoding.UTF8.GetBytes(c.Text)) w.WriteNumberValue(b);
        w.WriteEndArray();
    }

    /// <summary>A log-probability as JSON: −∞ (a token the combination rules out) has no JSON number, so it is written as -9999.0, as OpenAI does.</summary>
    static void WriteNumber(Utf8JsonWriter w, float logprob) => w.WriteNumberValue(float.IsFinite(logprob) ? logprob : -9999f);

    /// <summary>
    /// The extension "proxy_logprobs": per token, {"token_id", "token", "models": [{"model", "role", "logprob",
    /// "top_logprobs": [{"token_id", "token", "logprob"}]}]}: base, each expert and anti-expert, then "combined".
    /// </summary>
    public static void WriteModelLogprobs(Utf8JsonWriter w, IEnumerable<StepTokens> steps, CombinationSpec spec, int top)
    {
        w.WriteStartArray(ModelLogprobsOutput);
        foreach (var step in steps)
        {
            w.WriteStartObject();
            w.WriteNumber("token_id", step.TokenId);
            w.WritePropertyName("models");
            w.WriteStartArray();
            foreach (var (name, role) in ProxyAnalysis.Roles(spec))
            {
                if (!step.Top.TryGetValue(name, out var tops)) continue;
                w.WriteStartObject();
                w.WriteString("model", name);
                w.WriteString("role", role);
                w.WritePropertyName("logprob");
                if (step.ChosenLogprobs.TryGetValue(name, out var lp)) WriteNumber(w, lp); else w.WriteNullValue();
                w.WriteStartArray("top_logprobs");
                foreach (var t in tops.Take(top))
                {
                    w.WriteStartObject();
                    w.WriteNumber("token_id", t.TokenId);
                    w.WriteString("token", t.Text);
                    w.WritePropertyName("logprob");
                    WriteNumber(w, t.Logprob);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }
}

/// <summary>
/// What one choice of a request collects for its logprobs (echoed prompt, generated tokens) and proxy_logprobs, and the
/// writers for its streamed chunks and its final object.
/// </summary>
public sealed class ChoiceLogprobs(ParsedRequest req)
{
    readonly List<TokenLogprobsSpec> prompt = [], generated = [];
    readonly List<StepTokens> models = [];
    int offset; // completions' text_offset of the next streamed token

    /// <summary>Streaming with echo: whether this choice's prompt chunk went out.</summary>
    public bool Echoed { get; set; }

    public void Add(TextDelta d)
    {
        if (d.PromptLogprobs is { } p) prompt.AddRange(p);
        if (d.Logprobs is { } l) generated.Add(l);
        if (d.Analysis is { } a && req.ModelLogprobs > 0) models.Add(a);
    }

    bool Asked => req.Generation.Logprobs is not null;

    /// <summary>The streamed prompt chunk's logprobs (echo): the prompt's tokens from offset 0.</summary>
    public Action<Utf8JsonWriter>? PromptChunk()
    {
        offset = LogprobOptions.Length(prompt);
        if (!Asked || prompt.Count == 0) return null;
        var tokens = prompt.ToArray();
        return w => LogprobOptions.WriteCompletion(w, tokens, 0);
    }

    /// <summary>A streamed token's logprobs, or null when the delta carries none.</summary>
    public Action<Utf8JsonWriter>? TokenChunk(TextDelta d)
    {
        if (d.Logprobs is not { } one) return null;
        if (req.Endpoint == ApiEndpoint.ChatCompletions) return w => LogprobOptions.WriteChat(w, [one]);
        int at = offset;
        offset += one.Chosen.Text.Length;
        return w => LogprobOptions.WriteCompletion(w, [one], at);
    }

    /// <summary>A streamed token's proxy_logprobs (one step), or null.</summary>
    public Action<Utf8JsonWriter>? ModelsChunk(TextDelta d) =>
        req.ModelLogprobs > 0 && d.Analysis is { } a ? w => LogprobOptions.WriteModelLogprobs(w, [a], req.Combination, req.ModelLogprobs) : null;

    /// <summary>The whole choice's logprobs object (non-streamed), or null when not asked for.</summary>
    public Action<Utf8JsonWriter>? Whole()
    {
        if (!Asked) return null;
        if (req.Endpoint == ApiEndpoint.ChatCompletions) return w => LogprobOptions.WriteChat(w, generated);
        TokenLogprobsSpec[] tokens = [.. prompt, .. generated];
        return w => LogprobOptions.WriteCompletion(w, tokens, 0);
    }

    /// <summary>The whole choice's proxy_logprobs (non-streamed), or null when not asked for.</summary>
    public Action<Utf8JsonWriter>? WholeModels() =>
        req.ModelLogprobs > 0 ? w => LogprobOptions.WriteModelLogprobs(w, models, req.Combination, req.ModelLogprobs) : null;
}
