using System.Text.Json;
using System.Text.Json.Nodes;

namespace ProxyOrleans.Inference.Tokenization;

/// <summary>What tokenizer_config.json, config.json and generation_config.json say about special tokens.</summary>
public sealed class TokenizerConfig
{
    public string? BosToken { get; init; }
    public string? EosToken { get; init; }
    public string? UnkToken { get; init; }
    public bool? AddBosToken { get; init; }
    public bool? AddEosToken { get; init; }
    public string? ChatTemplate { get; init; }
    public IReadOnlyList<AddedToken> AddedTokens { get; init; } = [];
    /// <summary>bos_token_id from config.json.</summary>
    public int? ConfigBosTokenId { get; init; }
    /// <summary>eos_token_id (int or list) from config.json and generation_config.json.</summary>
    public IReadOnlyList<int> ConfigEosTokenIds { get; init; } = [];

    public static TokenizerConfig Load(string modelDir)
    {
        JsonObject? tc = HfJson.ReadObjectOrNull(Path.Combine(modelDir, "tokenizer_config.json"));
        JsonObject? config = HfJson.ReadObjectOrNull(Path.Combine(modelDir, "config.json"));
        JsonObject? generation = HfJson.ReadObjectOrNull(Path.Combine(modelDir, "generation_config.json"));

        var added = new List<AddedToken>();
        if (tc?["added_tokens_decoder"] is JsonObject decoder)
        {
            foreach (var (key, value) in decoder)
            {
                if (!int.TryParse(key, out int id) || value is not JsonObject t || t["content"]?.GetValue<string>() is not string content)
                    throw new InvalidDataException($"tokenizer_config.json: added_tokens_decoder entry '{key}' needs an integer key and a \"content\" string.");
                added.Add(new AddedToken(id, content, t["special"]?.GetValue<bool>() ?? false));
            }
        }

        var eosIds = new List<int>();
        foreach (var source in new[] { config, generation })
            foreach (int id in HfJson.IntOrList(source?["eos_token_id"]))
                if (!eosIds.Contains(id)) eosIds.Add(id);

        return new TokenizerConfig
        {
            BosToken = HfJson.TokenString(tc?["bos_token"]),
            EosToken = HfJson.TokenString(tc?["eos_token"]),
            UnkToken = HfJson.TokenString(tc?["unk_token"]),
            AddBosToken = HfJson.BoolOrNull(tc?["add_bos_token"]),
            AddEosToken = HfJson.BoolOrNull(tc?["add_eos_token"]),
            ChatTemplate = ReadChatTemplate(tc?["chat_template"]),
            AddedTokens = added,
            ConfigBosTokenId = HfJson.IntOrList(config?["bos_token_id"]).Cast<int?>().FirstOrDefault(),
            ConfigEosTokenIds = eosIds,
        };
    }

    // chat_template is a string, or (newer files) a list of {name, template} where "default" is the chat one.
    private static string? ReadChatTemplate(JsonNode? node) => node switch
    {
        null => null,
        JsonValue v => v.GetValue<string>(),
        JsonArray list => list.OfType<JsonObject>()
            .FirstOrDefault(t => t["name"]?.GetValue<string>() == "default")?["template"]?.GetValue<string>(),
        _ => null,
    };
}

internal static class HfJson
{
    public static JsonObject? ReadObjectOrNull(string path) => File.Exists(path) ? ReadObject(path) : null;

    public static JsonObject ReadObject(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true }) as JsonObject
                ?? throw new InvalidDataException($"{path} does not hold a JSON object. Replace it with the file from the model's Hugging Face repository.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON ({e.Message}). Replace it with the file from the model's Hugging Face repository.", e);
        }
    }

    // bos_token / eos_token are either "<s>" or {"content": "<s>", ...} (AddedToken form); null stays null.
    public static string? TokenString(JsonNode? node) => node switch
    {
        JsonValue v when v.TryGetValue(out string? s) => s,
        JsonObject o => o["content"]?.GetValue<string>(),
        _ => null,
    };

    public static bool? BoolOrNull(JsonNode? node) => node is JsonValue v && v.TryGetValue(out bool b) ? b : null;

    public static IEnumerable<int> IntOrList(JsonNode? node) => node switch
    {
        JsonValue v when v.TryGetValue(out int i) => [i],
        JsonArray a => a.Select(x => x!.GetValue<int>()).ToArray(),
        _ => [],
    };
}
