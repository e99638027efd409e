namespace ProxyOrleans.Gateway.OpenAi;

public enum ApiEndpoint { Completions, ChatCompletions }

/// <summary>A validated /v1/completions or /v1/chat/completions request.</summary>
public sealed record ParsedRequest
{
    public required ApiEndpoint Endpoint { get; init; }
    /// <summary>The "model" field as sent: a combination or a plain model.</summary>
    public required string Model { get; init; }
    public required CombinationSpec Combination { get; init; }
    /// <summary>Completions: one or more prompts (each gets n choices). Chat: empty.</summary>
    public IReadOnlyList<string> Prompts { get; init; } = [];
    /// <summary>Chat: the conversation. Completions: empty.</summary>
    public IReadOnlyList<ChatMessageSpec> Messages { get; init; } = [];
    public required int MaxTokens { get; init; }
    public required float Temperature { get; init; }
    public float TopP { get; init; } = 1f;
    public int TopK { get; init; }
    public long? Seed { get; init; }
    public IReadOnlyList<string> Stop { get; init; } = [];
    public int N { get; init; } = 1;
    public bool Stream { get; init; }
    public bool IncludeUsage { get; init; }
    /// <summary>Models named by a per-request override (proxy.base / proxy.experts): the tenant must be allowed each.</summary>
    public IReadOnlyList<string> OverrideModels { get; init; } = [];

    /// <summary>Number of generations this request runs (prompts × n).</summary>
    public int Generations => (Endpoint == ApiEndpoint.Completions ? Prompts.Count : 1) * N;
}
