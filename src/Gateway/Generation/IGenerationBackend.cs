namespace ProxyOrleans.Gateway.Generation;

public abstract record GenerationUpdate;
/// <summary>New text (already detokenized, never half a character) and how many tokens produced it; with the
/// proxy_analysis extension, what every model thought of that token.</summary>
/// With logprobs, the token's score under the combination; with echo's scores, on the first delta, the prompt's (first entry null).
public sealed record TextDelta(string Text, int Tokens, StepTokens? Analysis = null, TokenLogprobsSpec? Logprobs = null,
    TokenLogprobsSpec[]? PromptLogprobs = null) : GenerationUpdate;
/// <summary>One step's chosen token, each model's (and "combined"'s) top tokens and the chosen token's probability and log-probability under each.</summary>
public sealed record StepTokens(int TokenId, IReadOnlyDictionary<string, TopToken[]> Top, IReadOnlyDictionary<string, float> Chosen,
    IReadOnlyDictionary<string, float> ChosenLogprobs);
/// <summary>Last update of a generation. FinishReason: "stop" or "length".</summary>
/// StepMs / ModelMs: the coordinator's mean step time and the slowest model's mean compute time per step, when reported.
public sealed record Finished(string FinishReason, int PromptTokens, int CompletionTokens, double? StepMs = null, double? ModelMs = null) : GenerationUpdate;

/// <summary>What the HTTP layer needs from the cluster; the Orleans client implements it.</summary>
public interface IGenerationBackend
{
    /// <summary>Runs a generation; cancelling <paramref name="cancellationToken"/> stops it on every silo.</summary>
    /// <param name="generationId">Cluster-wide id: "&lt;tenant&gt;:&lt;request id&gt;:&lt;index&gt;".</param>
    IAsyncEnumerable<GenerationUpdate> RunAsync(string generationId, GenerationRequest request, CancellationToken cancellationToken);

    /// <summary>Models hosted by the cluster now and the combinations its silos are configured with.</summary>
    Task<ClusterModels> GetModelsAsync(CancellationToken cancellationToken);

    /// <summary>POST /tokenize on a hosted model (cluster errors become OpenAI error bodies).</summary>
    Task<TokenizeResult> TokenizeAsync(string model, TokenizeRequest request, CancellationToken cancellationToken);

    /// <summary>POST /detokenize on a hosted model.</summary>
    Task<string> DetokenizeAsync(string model, int[] tokens, CancellationToken cancellationToken);
}
