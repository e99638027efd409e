using System.Text.Json;

namespace ProxyOrleans.Gateway.OpenAi;

/// <summary>
/// Which fields each object of a request body may carry. A field is implemented, or it is a known OpenAI field this
/// server does not implement yet, accepted only with the value that means "off" (clients that send defaults keep
/// working; anything else is a 400 naming it), or it is unknown (a 400 naming it: a misspelt "temprature" must not
/// silently run at the default). Duplicate keys are refused too: which one would win is parser-dependent.
/// Implemented fields are validated where they are read (RequestParser; log-probabilities in LogprobOptions).
/// </summary>
public static class RequestFields
{
    /// <summary>A known field that is not implemented: its "off" value(s), in words, and the test for them.</summary>
    sealed record NotImplemented(string Off, Func<JsonElement, bool> IsOff);

    static readonly string[] Common =
        ["model", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "n", "stream", "stream_options", "alpha", "proxy", "user",
         ProxyAnalysis.Field, .. RequestParser.LogitsProcessorFields];

    static readonly HashSet<string> CompletionFields = [.. Common, "prompt", "logprobs", "echo"];
    static readonly HashSet<string> ChatFields = [.. Common, "messages", "max_completion_tokens", "logprobs", "top_logprobs"];

    static readonly Dictionary<string, NotImplemented> CommonNotImplemented = new(StringComparer.Ordinal)
    {
        ["service_tier"] = new("\"auto\" or \"default\"", v => IsString(v, "auto", "default")),
    };

    static readonly Dictionary<string, NotImplemented> CompletionNotImplemented = new(CommonNotImplemented, StringComparer.Ordinal)
    {
        ["best_of"] = new("1", v => v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var x) && x == 1),
        ["suffix"] = new("\"\"", v => IsString(v, "")),
    };

    static readonly Dictionary<string, NotImplemented> ChatNotImplemented = new(CommonNotImplemented, StringComparer.Ordinal)
    {
        ["tools"] = new("[] (function calling is not supported)", IsEmptyArray),
        ["tool_choice"] = new("\"none\"", v => IsString(v, "none")),
        ["parallel_tool_calls"] = new("true or false (without tools it has no effect)", v => v.ValueKind is JsonValueKind.True or JsonValueKind.False),
        ["functions"] = new("[]", IsEmptyArray),
        ["function_call"] = new("\"none\"", v => IsString(v, "none")),
        ["response_format"] = new("{\"type\": \"text\"}", v => v.ValueKind == JsonValueKind.Object && v.EnumerateObject().Count() == 1
                                                              && v.TryGetProperty("type", out var t) && IsString(t, "text")),
        ["store"] = new("false", IsFalse),
        ["metadata"] = new("{}", IsEmptyObject),
        ["modalities"] = new("[\"text\"]", v => v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 1 && IsString(v[0], "text")),
        ["audio"] = new("null (audio output is not supported)", _ => false),
        ["prediction"] = new("null", _ => false),
        ["reasoning_effort"] = new("null (these models do not reason)", _ => false),
        ["verbosity"] = new("null", _ => false),
        ["web_search_options"] = new("null", _ => false),
    };

    static readonly HashSet<string> MessageFields = ["role", "content"];
    static readonly Dictionary<string, NotImplemented> MessageNotImplemented = new(StringComparer.Ordinal)
    {
        ["name"] = new("null (participant names are not shown to the model)", _ => false),
        ["tool_calls"] = new("[]", IsEmptyArray),
        ["tool_call_id"] = new("null", _ => false),
        ["function_call"] = new("null", _ => false),
        ["refusal"] = new("null", _ => false),
        ["audio"] = new("null", _ => false),
    };

    public static readonly HashSet<string> ContentPartFields = ["type", "text"];
    public static readonly HashSet<string> StreamOptionFields = ["include_usage"];
    public static readonly HashSet<string> ProxyFields = ["alpha", "base", "experts", "answer_cue", "expert_response_prefix", LogprobOptions.ModelLogprobsField];
    public static readonly HashSet<string> ExpertFields = ["expert", "anti_expert", "weight"];
    public static readonly HashSet<string> ProxyAnalysisFields = ["top_tokens"];

    /// <summary>Checks the top level of a request body for <paramref name="endpoint"/>.</summary>
    public static void CheckBody(JsonElement root, ApiEndpoint endpoint)
    {
        var (fields, notImplemented, path) = endpoint == ApiEndpoint.Completions
            ? (CompletionFields, CompletionNotImplemented, "POST /v1/completions")
            : (ChatFields, ChatNotImplemented, "POST /v1/chat/completions");
        Check(root, null, fields, notImplemented, path);
    }

    /// <summary>Checks the top level of another endpoint's body (<paramref name="where"/>: "POST /tokenize").</summary>
    public static void CheckBody(JsonElement root, HashSet<string> fields, string where) => Check(root, null, fields, null, where);

    public static void CheckMessage(JsonElement message, string at) => Check(message, at, MessageFields, MessageNotImplemented, "a chat message");

    /// <summary>Checks a nested object (<paramref name="at"/> names it, e.g. "proxy.experts[0]").</summary>
    public static void Check(JsonElement obj, string at, HashSet<string> fields) => Check(obj, at, fields, null, $"'{at}'");

    static void Check(JsonElement obj, string? at, HashSet<string> fields, Dictionary<string, NotImplemented>? notImplemented, string where)
    {
        HashSet<string> seen = new(StringComparer.Ordinal);
        foreach (var p in obj.EnumerateObject())
        {
            string name;
            try { name = p.Name; }
            catch (InvalidOperationException)
            {
                throw ApiError.Invalid(at, $"A field name in {where} is not valid Unicode text (it contains an unpaired surrogate escape).", "invalid_value");
            }
            var param = at is null ? name : $"{at}.{name}";
            if (!seen.Add(name))
                throw ApiError.Invalid(param, $"'{param}' appears more than once in the request body; send each field once.", "duplicate_parameter");
            if (fields.Contains(name)) continue;
            if (notImplemented is not null && notImplemented.TryGetValue(name, out var ni))
            {
                if (p.Value.ValueKind == JsonValueKind.Null || ni.IsOff(p.Value)) continue;
                throw ApiError.Invalid(param,
                    $"'{param}' is not implemented by this server yet: remove it, or send {ni.Off} (its default, which changes nothing).",
                    "unsupported_parameter");
            }
            var accepted = string.Join(", ", fields.Order(StringComparer.Ordinal));
            var close = fields.FirstOrDefault(f => string.Equals(f, name, StringComparison.OrdinalIgnoreCase));
            throw ApiError.Invalid(param,
                $"'{Shorten(param)}' is not a field of {where}" + (close is not null ? $" (did you mean '{close}'? names are case-sensitive)" : "") +
                $". Accepted fields: {accepted}.", "unknown_parameter");
        }
    }

    static string Shorten(string s) => s.Length <= 64 ? s : s[..64] + "…";

    static bool IsZero(JsonElement v) => v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out var x) && x == 0;
    static bool IsFalse(JsonElement v) => v.ValueKind == JsonValueKind.False;
    static bool IsEmptyObject(JsonElement v) => v.ValueKind == JsonValueKind.Object && !v.EnumerateObject().Any();
    static bool IsEmptyArray(JsonElement v) => v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 0;
    static bool IsString(JsonElement v, params string[] values)
    {
        if (v.ValueKind != JsonValueKind.String) return false;
        try { return values.Contains(v.GetString(), StringComparer.Ordinal); }
        catch (InvalidOperationException) { return false; } // unpaired surrogate: not one of the values
    }
}
