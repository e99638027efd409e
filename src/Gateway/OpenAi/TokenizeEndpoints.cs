using System.Text.Json;
using ProxyOrleans.Gateway.Generation;
using ProxyOrleans.Gateway.Tenants;

namespace ProxyOrleans.Gateway.OpenAi;

/// <summary>
/// POST /tokenize and /detokenize in vLLM's shapes. The model's own grain (on a silo hosting it) holds the tokenizer:
/// the gateway has none. A combination's name uses its base model's tokenizer (every model of a combination shares the
/// vocabulary), so <c>count</c> is the prompt_tokens a completion of that prompt reports when it has no answer cue.
/// </summary>
public sealed class TokenizeEndpoints(GatewayOptions options, ModelCatalog catalog, IGenerationBackend backend)
{
    static readonly HashSet<string> TokenizeFields = ["model", "prompt", "messages", "add_special_tokens", "add_generation_prompt", "return_token_strs"];
    static readonly HashSet<string> DetokenizeFields = ["model", "tokens"];

    /// <summary>{model, prompt | messages, add_special_tokens, add_generation_prompt, return_token_strs} → {count, max_model_len, tokens[, token_strs]}.</summary>
    public async Task TokenizeAsync(HttpContext ctx)
    {
        using var doc = RequestParser.ParseJson(await CompletionHandler.ReadBodyAsync(ctx, options));
        var root = doc.RootElement;
        RequestFields.CheckBody(root, TokenizeFields, "POST /tokenize");
        var model = await ResolveAsync(ctx, root);
        var hasPrompt = RequestParser.Get(root, "prompt") is not null;
        var hasMessages = RequestParser.Get(root, "messages") is not null;
        if (hasPrompt == hasMessages)
            throw ApiError.Invalid(hasPrompt ? "messages" : "prompt", "Give either 'prompt' (a string) or 'messages' (a chat), not both or neither.",
                hasPrompt ? "invalid_value" : "missing_required_parameter");
        TokenizeRequest request;
        if (hasPrompt)
        {
            var p = RequestParser.Get(root, "prompt")!.Value;
            if (p.ValueKind != JsonValueKind.String) throw ApiError.Invalid("prompt", "'prompt' must be a string.", "invalid_type");
            var text = RequestParser.Text(p, "prompt");
            CheckLength(text.Length, "prompt");
            request = new TokenizeRequest { Prompt = text, AddSpecialTokens = RequestParser.OptionalBool(root, "add_special_tokens") ?? true };
        }
        else
        {
            var messages = RequestParser.ParseMessages(root);
            CheckLength(messages.Sum(m => m.Content.Length), "messages");
            // vLLM's chat defaults: the template writes BOS itself, and the prompt ends with the assistant's header.
            request = new TokenizeRequest
            {
                Messages = [.. messages], AddSpecialTokens = RequestParser.OptionalBool(root, "add_special_tokens") ?? false,
                AddGenerationPrompt = RequestParser.OptionalBool(root, "add_generation_prompt") ?? true,
            };
        }
        if (hasPrompt && RequestParser.Get(root, "add_generation_prompt") is not null)
            throw ApiError.Invalid("add_generation_prompt", "'add_generation_prompt' applies to 'messages' only.");
        request = request with { ReturnTokenStrings = RequestParser.OptionalBool(root, "return_token_strs") ?? false };

        var result = await backend.TokenizeAsync(model, request, ctx.RequestAborted);
        await WriteJsonAsync(ctx, w =>
        {
            w.WriteStartObject();
            w.WriteNumber("count", result.Tokens.Length);
            w.WriteNumber("max_model_len", result.MaxModelLength);
            w.WritePropertyName("tokens");
            w.WriteStartArray();
            foreach (var id in result.Tokens) w.WriteNumberValue(id);
            w.WriteEndArray();
            if (result.TokenStrings is { } strings)
            {
                w.WritePropertyName("token_strs");
                w.WriteStartArray();
                foreach (var t in strings) w.WriteStringValue(t);
                w.WriteEndArray();
            }
            w.WriteEndObject();
        });
    }

    /// <summary>{model, tokens} → {prompt}.</summary>
    public async Task DetokenizeAsync(HttpContext ctx)
    {
        using var doc = RequestParser.ParseJson(await CompletionHandler.ReadBodyAsync(ctx, options));
        var root = doc.RootElement;
        RequestFields.CheckBody(root, DetokenizeFields, "POST /detokenize");
        var model = await ResolveAsync(ctx, root);
        var t = RequestParser.Get(root, "tokens") ?? throw ApiError.Invalid("tokens", "'tokens' is required: a list of token ids.", "missing_required_parameter");
        if (t.ValueKind != JsonValueKind.Array) throw ApiError.Invalid("tokens", "'tokens' must be a list of token ids, e.g. [1, 15043].", "invalid_type");
        var ids = RequestParser.TokenIds(t, "tokens", "tokens");
        var text = await backend.DetokenizeAsync(model, ids, ctx.RequestAborted);
        await WriteJsonAsync(ctx, w =>
        {
            w.WriteStartObject();
            w.WriteString("prompt", text);
            w.WriteEndObject();
        });
    }

    /// <summary>The model whose tokenizer answers: the named model, or a combination's base; the tenant must be allowed the name.</summary>
    async Task<string> ResolveAsync(HttpContext ctx, JsonElement root)
    {
        var tenant = TenantAuth.Current(ctx);
        var name = RequestParser.RequiredString(root, "model");
        await catalog.RefreshAsync(ctx.RequestAborted);
        if (catalog.Error is { } down)
            throw ApiError.Unavailable($"The model cluster cannot be reached right now ({down}); retry shortly.", "cluster_unavailable");
        var spec = catalog.Resolve(name) ?? throw new ApiError(StatusCodes.Status400BadRequest,
            $"The model '{name}' does not exist. GET /v1/models lists the models and combinations you can use.",
            "invalid_request_error", "model", "model_not_found", "unknown_model");
        if (!tenant.Allows(name)) throw ApiError.ModelNotAllowed("model", name);
        if (!catalog.Hosted.Contains(spec.Base))
            throw ApiError.Unavailable($"The model '{spec.Base}' is not hosted by any silo right now; retry later.", "model_not_hosted");
        ctx.Items["proxyorleans.model"] = name;
        return spec.Base;
    }

    void CheckLength(int chars, string param)
    {
        if (chars > options.MaxPromptChars)
            throw ApiError.Invalid(param, $"'{param}' is too long: {chars} characters, the limit is {options.MaxPromptChars}.", "context_length_exceeded");
    }

    static async Task WriteJsonAsync(HttpContext ctx, Action<Utf8JsonWriter> write)
    {
        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(ctx.Response.Body, JsonOut.Options);
        write(w);
        await w.FlushAsync();
    }
}
