using System.Text.Json;
using ProxyOrleans.Abstractions;

namespace ProxyOrleans.Gateway.OpenAi;

// What is generated from: the completions prompt in its four shapes and the chat messages.
public sealed partial class RequestParser
{
    const string PromptIdsHint = "A list of token ids holds only integers; send text as a string.";

    /// <summary>
    /// OpenAI's four prompt shapes: a string, a list of strings, a list of token ids, a list of lists of token ids (one
    /// prompt each). Ids are checked here to be non-negative integers; against the vocabulary by the models that read them.
    /// </summary>
    IReadOnlyList<CompletionPrompt> ParsePrompts(JsonElement root)
    {
        const string shapes = "'prompt' must be a string, a list of strings, a list of token ids or a list of lists of token ids";
        var p = Get(root, "prompt") ?? throw ApiError.Invalid("prompt", "'prompt' is required.", "missing_required_parameter");
        List<CompletionPrompt> prompts = [];
        switch (p.ValueKind)
        {
            case JsonValueKind.String:
                prompts.Add(new(Text(p, "prompt"), null));
                break;
            case JsonValueKind.Array when p.GetArrayLength() == 0:
                throw ApiError.Invalid("prompt", "'prompt' is an empty list.");
            case JsonValueKind.Array when p[0].ValueKind == JsonValueKind.Number:
                prompts.Add(new(null, TokenIds(p, "prompt", "prompt", PromptIdsHint)));
                break;
            case JsonValueKind.Array:
                var i = 0;
                foreach (var e in p.EnumerateArray())
                {
                    var at = $"prompt[{i++}]";
                    prompts.Add(e.ValueKind switch
                    {
                        JsonValueKind.String => new(Text(e, "prompt"), null),
                        JsonValueKind.Array => new(null, TokenIds(e, "prompt", at, PromptIdsHint)),
                        _ => throw ApiError.Invalid("prompt", $"{shapes}; '{at}' is a {e.ValueKind.ToString().ToLowerInvariant()}.", "invalid_type"),
                    });
                }
                break;
            default:
                throw ApiError.Invalid("prompt", $"{shapes}.", "invalid_type");
        }
        if (prompts.Any(q => q.Length == 0))
            throw ApiError.Invalid("prompt", "'prompt' must not be empty (a token-id prompt needs at least one id).");
        return prompts;
    }

    internal static IReadOnlyList<ChatMessageSpec> ParseMessages(JsonElement root)
    {
        var m = Get(root, "messages") ?? throw ApiError.Invalid("messages", "'messages' is required.", "missing_required_parameter");
        if (m.ValueKind != JsonValueKind.Array)
            throw ApiError.Invalid("messages", "'messages' must be a list of {role, content} objects.", "invalid_type");
        List<ChatMessageSpec> turns = [];
        var i = 0;
        foreach (var e in m.EnumerateArray())
        {
            var at = $"messages[{i}]";
            if (e.ValueKind != JsonValueKind.Object)
                throw ApiError.Invalid(at, $"'{at}' must be an object with 'role' and 'content'.", "invalid_type");
            RequestFields.CheckMessage(e, at);
            var role = RequiredString(e, "role", $"{at}.role");
            if (!Roles.Contains(role))
                throw ApiError.Invalid($"{at}.role", $"'{at}.role' must be one of system, developer, user, assistant; got '{role}'.");
            var c = Get(e, "content") ?? throw ApiError.Invalid($"{at}.content", $"'{at}.content' is required.", "missing_required_parameter");
            string content;
            if (c.ValueKind == JsonValueKind.String) content = Text(c, $"{at}.content");
            else if (c.ValueKind == JsonValueKind.Array)
            {
                // Content parts: only text parts carry meaning for a text model.
                var sb = new System.Text.StringBuilder();
                var j = 0;
                foreach (var part in c.EnumerateArray())
                {
                    var pat = $"{at}.content[{j++}]";
                    if (part.ValueKind == JsonValueKind.Object) RequestFields.Check(part, pat, RequestFields.ContentPartFields);
                    if (part.ValueKind != JsonValueKind.Object || RequiredString(part, "type", $"{pat}.type") != "text")
                        throw ApiError.Invalid(pat, $"'{pat}' must be a text part {{\"type\":\"text\",\"text\":...}}; images and audio are not supported.");
                    sb.Append(RequiredString(part, "text", $"{pat}.text"));
                }
                content = sb.ToString();
            }
            else throw ApiError.Invalid($"{at}.content", $"'{at}.content' must be a string or a list of text parts.", "invalid_type");
            turns.Add(new ChatMessageSpec(role == "developer" ? "system" : role, content));
            i++;
        }
        if (turns.Count == 0) throw ApiError.Invalid("messages", "'messages' must not be empty.");
        if (turns.All(t => t.Content.Length == 0)) throw ApiError.Invalid("messages", "'messages' has no text: every content is empty.");
        return turns;
    }
}
