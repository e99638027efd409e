namespace ProxyOrleans.Gateway.OpenAi;

public enum ApiEndpoint { Completions, ChatCompletions }

/// <summary>One prompt of a completions request: text, or token ids of the base model's vocabulary (exactly one is set).</summary>
public sealed record CompletionPrompt(string? Text, int[]? TokenIds)
{
    /// <summary>Its length for the gateway's limits and quota estimate: characters of text, or ids.</summary>
    public int Length => Text?.Length ?? TokenIds!.Length;
}

/// <summary>
/// A validated /v1/completions or /v1/chat/completions request: the cluster's <see cref="GenerationRequest"/> that
/// each of its generations runs, and what only the HTTP layer needs (endpoint, prompts, n, streaming).
/// </summary>
public sealed record ParsedRequest
{
    public required ApiEndpoint Endpoint { get; init; }
    /// <summary>The "model" field as sent: a combination or a plain model.</summary>
    public required string Model { get; init; }
    /// <summary>
    /// The wire request every generation of this request runs: combination (with per-request overrides and prompt
    /// options), chat messages, sampling. Completions set <see cref="GenerationRequest.Prompt"/> (or
    /// <see cref="GenerationRequest.PromptTokenIds"/>) per prompt; choice
    /// j uses seed + j (see <see cref="Generations"/>).
    /// </summary>
    public required GenerationRequest Generation { get; init; }
    /// <summary>Completions: one or more prompts (each gets n choices), in OpenAI's index order. Chat: empty.</summary>
    public IReadOnlyList<CompletionPrompt> Prompts { get; init; } = [];
    public int N { get; init; } = 1;
    public bool Stream { get; init; }
    public bool IncludeUsage { get; init; }
    /// <summary>Models named by a per-request override (proxy.base / proxy.experts): the tenant must be allowed each.</summary>
    public IReadOnlyList<string> OverrideModels { get; init; } = [];

    // Log-probabilities (LogprobOptions): what to score is in Generation (Logprobs, PromptLogprobs, TopTokens).
    /// <summary>Completions' echo: each choice's text (and logprobs) starts with its prompt.</summary>
    public bool Echo { get; init; }
    /// <summary>proxy.model_logprobs: per token, each model's top tokens and log-probabilities in every choice (0: off).</summary>
    public int ModelLogprobs { get; init; }

    public CombinationSpec Combination => Generation.Combination;
    public int MaxTokens => Generation.Sampling.MaxNewTokens;

    /// <summary>Number of generations this request runs (prompts × n).</summary>
    public int GenerationCount => (Endpoint == ApiEndpoint.Completions ? Prompts.Count : 1) * N;

    /// <summary>
    /// The request of each generation, prompts × choices in order, owned by <paramref name="tenant"/>. Choices of one
    /// prompt differ by seed: seed + j with a seed given (each choice still repeats exactly), else a random seed each
    /// when sampling several.
    /// </summary>
    public IReadOnlyList<GenerationRequest> Generations(string tenant)
    {
        List<GenerationRequest> all = [];
        var prompts = Endpoint == ApiEndpoint.Completions ? Prompts.Cast<CompletionPrompt?>().ToList() : [null];
        var sampling = Generation.Sampling;
        foreach (var prompt in prompts)
            for (var j = 0; j < N; j++)
            {
                ulong? seed = sampling.Seed is { } s ? unchecked(s + (ulong)j)
                    : N > 1 && sampling.Temperature > 0 ? (ulong)Random.Shared.NextInt64() : null;
                all.Add(Generation with
                {
                    Prompt = prompt is null ? Generation.Prompt : prompt.Text, PromptTokenIds = prompt?.TokenIds,
                    TenantId = tenant, Sampling = sampling with { Seed = seed },
                });
            }
        return all;
    }
}
