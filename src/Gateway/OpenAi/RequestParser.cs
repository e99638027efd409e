using System.Text.Json;

namespace ProxyOrleans.Gateway.OpenAi;

/// <summary>
/// Turns a request body into a <see cref="ParsedRequest"/> or an <see cref="ApiError"/> naming the field.
/// Parsed by hand (JsonDocument) rather than model binding so every bad value gets its own message.
/// </summary>
public sealed partial class RequestParser(GatewayOptions options, Func<string, CombinationSpec?> resolveModel)
{
    static readonly HashSet<string> Roles = ["system", "user", "assistant", "developer"];

    public static JsonDocument ParseJson(ReadOnlyMemory<byte> body)
    {
        if (body.Length == 0)
            throw ApiError.Invalid(null, "The request body is empty; send a JSON object.", "invalid_json");
        try
        {
            var doc = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 32 });
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                doc.Dispose();
                throw ApiError.Invalid(null, "The request body must be a JSON object.", "invalid_json");
            }
            return doc;
        }
        catch (JsonException e)
        {
            throw ApiError.Invalid(null, $"The request body is not valid JSON: {e.Message}", "invalid_json");
        }
    }

    public ParsedRequest Parse(JsonElement root, ApiEndpoint endpoint)
    {
        RequestFields.CheckBody(root, endpoint);
        var model = RequiredString(root, "model");
        var combination = resolveModel(model) ?? throw new ApiError(StatusCodes.Status400BadRequest,
            $"The model '{model}' does not exist. GET /v1/models lists the models and combinations you can use.",
            "invalid_request_error", "model", "model_not_found", "unknown_model");

        IReadOnlyList<CompletionPrompt> prompts = [];
        IReadOnlyList<ChatMessageSpec> messages = [];
        int promptChars;
        if (endpoint == ApiEndpoint.Completions)
        {
            prompts = ParsePrompts(root);
            promptChars = prompts.Max(p => p.Length); // a token id stands for at least one character
        }
        else
        {
            messages = ParseMessages(root);
            promptChars = messages.Sum(m => m.Content.Length);
        }
        var promptParam = endpoint == ApiEndpoint.Completions ? "prompt" : "messages";
        if (promptChars > options.MaxPromptChars)
            throw ApiError.Invalid(promptParam,
                $"'{promptParam}' is too long: {promptChars} characters, the limit is {options.MaxPromptChars}.",
                "context_length_exceeded");

        int maxTokens = options.DefaultMaxTokens;
        // With echo, max_tokens 0 scores the prompt and generates nothing (how harnesses score multiple choice).
        bool echo = endpoint == ApiEndpoint.Completions && OptionalBool(root, "echo") == true;
        foreach (var name in endpoint == ApiEndpoint.ChatCompletions ? new[] { "max_tokens", "max_completion_tokens" } : ["max_tokens"])
            if (OptionalInt(root, name) is { } mt)
            {
                if (mt < (echo ? 0 : 1) || mt > options.MaxTokensLimit)
                    throw ApiError.Invalid(name, $"'{name}' must be between 1 and {options.MaxTokensLimit}" +
                        (endpoint == ApiEndpoint.Completions ? " (0 only with \"echo\": true, to score the prompt alone)" : "") + $"; got {mt}.");
                maxTokens = (int)mt;
            }

        var temperature = OptionalFinite(root, "temperature") ?? options.DefaultTemperature;
        if (temperature < 0 || temperature > 2)
            throw ApiError.Invalid("temperature", $"'temperature' must be between 0 and 2; got {temperature}.");
        var topP = OptionalFinite(root, "top_p") ?? 1.0;
        if (topP <= 0 || topP > 1)
            throw ApiError.Invalid("top_p", $"'top_p' must be greater than 0 and at most 1; got {topP}.");
        var topK = OptionalInt(root, "top_k") ?? 0;
        if (topK < 0 || topK > int.MaxValue)
            throw ApiError.Invalid("top_k", $"'top_k' must be 0 (off) or a positive integer; got {topK}.");
        var seed = OptionalInt(root, "seed");
        var n = OptionalInt(root, "n") ?? 1;
        if (n < 1 || n > options.MaxChoices)
            throw ApiError.Invalid("n", $"'n' must be between 1 and {options.MaxChoices}; got {n}.");
        var stop = ParseStop(root);
        var stream = OptionalBool(root, "stream") ?? false;
        var includeUsage = false;
        if (Get(root, "stream_options") is { } so)
        {
            if (so.ValueKind != JsonValueKind.Object)
                throw ApiError.Invalid("stream_options", "'stream_options' must be an object such as {\"include_usage\": true}.", "invalid_type");
            if (!stream)
                throw ApiError.Invalid("stream_options", "'stream_options' is only allowed when 'stream' is true.");
            RequestFields.Check(so, "stream_options", RequestFields.StreamOptionFields);
            includeUsage = OptionalBool(so, "include_usage", "stream_options.include_usage") ?? false;
        }
        var processors = ParseLogitsProcessors(root);
        // An end-user label for the operator's abuse tracking (OpenAI's meaning): checked, not used by decoding.
        _ = OptionalText(root, "user", "user");

        var (spec, overrides) = ApplyOverrides(root, combination);

        var request = new ParsedRequest
        {
            Endpoint = endpoint, Model = model, Prompts = prompts, N = (int)n, Stream = stream, IncludeUsage = includeUsage,
            OverrideModels = overrides,
            Generation = new GenerationRequest
            {
                Combination = spec,
                Messages = endpoint == ApiEndpoint.ChatCompletions ? [.. messages] : null,
                Sampling = processors with
                {
                    Temperature = (float)temperature,
                    // A top_p below float's range (1e-50) keeps only the most likely token(s), as its smallest float does.
                    TopP = Math.Max((float)topP, float.Epsilon), TopK = (int)topK,
                    Seed = seed is { } s ? unchecked((ulong)s) : null, MaxNewTokens = maxTokens, Stop = [.. stop],
                },
            },
        };
        if (request.GenerationCount > options.MaxChoices)
            throw ApiError.Invalid("n", $"prompts × n = {request.GenerationCount} exceeds the limit of {options.MaxChoices} generations per request.");
        return request;
    }

    IReadOnlyList<string> ParseStop(JsonElement root)
    {
        if (Get(root, "stop") is not { } s) return [];
        List<string> stops = [];
        if (s.ValueKind == JsonValueKind.String) stops.Add(Text(s, "stop"));
        else if (s.ValueKind == JsonValueKind.Array)
        {
            var i = 0;
            foreach (var e in s.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.String)
                    throw ApiError.Invalid("stop", $"'stop[{i}]' must be a string.", "invalid_type");
                stops.Add(Text(e, "stop"));
                i++;
            }
        }
        else throw ApiError.Invalid("stop", "'stop' must be a string or a list of strings.", "invalid_type");
        if (stops.Count > options.MaxStopSequences)
            throw ApiError.Invalid("stop", $"'stop' has {stops.Count} sequences; at most {options.MaxStopSequences} are allowed.");
        for (var i = 0; i < stops.Count; i++)
        {
            if (stops[i].Length == 0) throw ApiError.Invalid("stop", $"'stop[{i}]' is empty; stop sequences must have at least one character.");
            if (stops[i].Length > options.MaxStopChars)
                throw ApiError.Invalid("stop", $"'stop[{i}]' is {stops[i].Length} characters; the limit is {options.MaxStopChars}.");
        }
        return stops;
    }

    /// <summary>
    /// Extension fields: top-level "alpha", or "proxy": {"alpha", "base", "experts": [{"expert","anti_expert","weight"}],
    /// "answer_cue", "expert_response_prefix"} (the prompt options override the combination's configured defaults).
    /// </summary>
    (CombinationSpec, IReadOnlyList<string>) ApplyOverrides(JsonElement root, CombinationSpec spec)
    {
        List<string> named = [];
        if (OptionalFinite(root, "alpha") is { } topAlpha) spec = spec with { Alpha = CheckAlpha(topAlpha, "alpha") };
        if (Get(root, "proxy") is not { } proxy) return (spec, named);
        if (proxy.ValueKind != JsonValueKind.Object)
            throw ApiError.Invalid("proxy", "'proxy' must be an object: {\"alpha\", \"base\", \"experts\": [{\"expert\", \"anti_expert\", \"weight\"}], \"answer_cue\", \"expert_response_prefix\"}.", "invalid_type");
        RequestFields.Check(proxy, "proxy", RequestFields.ProxyFields);
        if (OptionalFinite(proxy, "alpha", "proxy.alpha") is { } a) spec = spec with { Alpha = CheckAlpha(a, "proxy.alpha") };
        if (OptionalText(proxy, "answer_cue", "proxy.answer_cue") is { } cue)
        {
            if (CombinationSpec.AnswerCueProblem(cue) is { } problem)
                throw ApiError.Invalid("proxy.answer_cue", $"'proxy.answer_cue': {problem} Send \"{{prompt}}\" for the bare prompt.");
            spec = spec with { AnswerCue = cue };
        }
        if (OptionalText(proxy, "expert_response_prefix", "proxy.expert_response_prefix") is { } prefix)
            spec = spec with { ExpertResponsePrefix = prefix };
        if (OptionalString(proxy, "base", "proxy.base") is { } b)
        {
            spec = spec with { Base = CheckPlainModel(b, "proxy.base") };
            named.Add(b);
        }
        if (Get(proxy, "experts") is { } experts)
        {
            if (experts.ValueKind != JsonValueKind.Array)
                throw ApiError.Invalid("proxy.experts", "'proxy.experts' must be a list of {expert, anti_expert, weight}.", "invalid_type");
            List<ExpertSpec> pairs = [];
            var i = 0;
            foreach (var e in experts.EnumerateArray())
            {
                var at = $"proxy.experts[{i++}]";
                if (e.ValueKind != JsonValueKind.Object)
                    throw ApiError.Invalid(at, $"'{at}' must be an object {{expert, anti_expert, weight}}.", "invalid_type");
                RequestFields.Check(e, at, RequestFields.ExpertFields);
                var ex = CheckPlainModel(RequiredString(e, "expert", $"{at}.expert"), $"{at}.expert");
                var anti = CheckPlainModel(RequiredString(e, "anti_expert", $"{at}.anti_expert"), $"{at}.anti_expert");
                var w = OptionalFinite(e, "weight", $"{at}.weight") ?? 1.0;
                if (Math.Abs(w) > options.MaxAbsAlpha)
                    throw ApiError.Invalid($"{at}.weight", $"'{at}.weight' must be within ±{options.MaxAbsAlpha}; got {w}.");
                pairs.Add(new ExpertSpec(ex, anti, (float)w));
                named.Add(ex);
                named.Add(anti);
            }
            if (pairs.Count > 8) throw ApiError.Invalid("proxy.experts", "'proxy.experts' has more than 8 pairs.");
            spec = spec with { Experts = pairs.ToArray() };
            // A plain model given experts without an alpha steers with alpha 1, the paper's setting.
            if (spec.Alpha == 0 && pairs.Count > 0 && OptionalFinite(proxy, "alpha", "proxy.alpha") is null && Get(root, "alpha") is null)
                spec = spec with { Alpha = 1f };
        }
        return (spec, named);
    }

    float CheckAlpha(double a, string param)
    {
        if (Math.Abs(a) > options.MaxAbsAlpha)
            throw ApiError.Invalid(param, $"'{param}' must be within ±{options.MaxAbsAlpha}; got {a}.");
        return (float)a;
    }

    string CheckPlainModel(string name, string param)
    {
        var s = resolveModel(name);
        if (s is null || s.Experts.Length > 0 || s.Base != name)
            throw new ApiError(StatusCodes.Status400BadRequest,
                $"'{param}' names '{name}', which is not a model hosted by the cluster (combinations cannot be nested).",
                "invalid_request_error", param, "model_not_found", "unknown_model");
        return name;
    }

    // ---- typed field readers: every failure names the field ----

    internal static JsonElement? Get(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    internal static string RequiredString(JsonElement obj, string name, string? param = null)
    {
        param ??= name;
        var v = Get(obj, name) ?? throw ApiError.Invalid(param, $"'{param}' is required.", "missing_required_parameter");
        if (v.ValueKind != JsonValueKind.String)
            throw ApiError.Invalid(param, $"'{param}' must be a string.", "invalid_type");
        var s = Text(v, param);
        if (s.Length == 0) throw ApiError.Invalid(param, $"'{param}' must not be empty.");
        return s;
    }

    static string? OptionalString(JsonElement obj, string name, string? param = null)
    {
        if (Get(obj, name) is not { } v) return null;
        return RequiredString(obj, name, param);
    }

    /// <summary>An optional string that may be empty, at most MaxPromptChars long.</summary>
    string? OptionalText(JsonElement obj, string name, string param)
    {
        if (Get(obj, name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.String)
            throw ApiError.Invalid(param, $"'{param}' must be a string.", "invalid_type");
        var s = Text(v, param);
        if (s.Length > options.MaxPromptChars)
            throw ApiError.Invalid(param, $"'{param}' is {s.Length} characters; the limit is {options.MaxPromptChars}.");
        return s;
    }

    static long? OptionalInt(JsonElement obj, string name, string? param = null)
    {
        param ??= name;
        if (Get(obj, name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out var x))
            throw ApiError.Invalid(param, $"'{param}' must be an integer.", "invalid_type");
        return x;
    }

    static double? OptionalFinite(JsonElement obj, string name, string? param = null)
    {
        param ??= name;
        if (Get(obj, name) is not { } v) return null;
        if (v.ValueKind == JsonValueKind.String)
            throw ApiError.Invalid(param, $"'{param}' must be a finite number, not a string ('{Trim(Text(v, param))}').", "invalid_type");
        // 1e999 parses to infinity: refuse it like NaN.
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out var x) || !double.IsFinite(x))
            throw ApiError.Invalid(param, $"'{param}' must be a finite number.", "invalid_type");
        return x;
    }

    internal static bool? OptionalBool(JsonElement obj, string name, string? param = null)
    {
        param ??= name;
        if (Get(obj, name) is not { } v) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw ApiError.Invalid(param, $"'{param}' must be true or false.", "invalid_type"),
        };
    }

    /// <summary>
    /// A JSON list of token ids (integers from 0 up; the vocabulary's bound is the models' check); <paramref name="at"/>
    /// names the list in errors about <paramref name="param"/>, <paramref name="hint"/> ends them.
    /// </summary>
    internal static int[] TokenIds(JsonElement list, string param, string at, string? hint = null)
    {
        var ids = new int[list.GetArrayLength()];
        var i = 0;
        foreach (var e in list.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out var id) || id < 0)
                throw ApiError.Invalid(param, $"'{at}[{i}]' must be a token id (an integer from 0 to the vocabulary size − 1); got {Trim(e.GetRawText())}." +
                                              (hint is null ? "" : " " + hint), "invalid_type");
            ids[i++] = id;
        }
        return ids;
    }

    /// <summary>A JSON string as text; lone surrogates ("\ud800") are a 400 naming the field, not an exception.</summary>
    internal static string Text(JsonElement v, string param)
    {
        try { return v.GetString()!; }
        catch (InvalidOperationException)
        {
            throw ApiError.Invalid(param, $"'{param}' is not valid Unicode text (it contains an unpaired surrogate escape).", "invalid_value");
        }
    }

    static string Trim(string s) => s.Length <= 32 ? s : s[..32] + "…";
}
