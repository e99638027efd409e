using System.Runtime.CompilerServices;
using ProxyOrleans.Gateway.OpenAi;

namespace ProxyOrleans.Gateway.Generation;

/// <summary>
/// Runs generations on the cluster: one coordinator grain per generation (placed beside the base model),
/// its IAsyncEnumerable of token events streamed straight through (via <see cref="GenerationClient"/>, which
/// resumes on a new coordinator when the old one's silo dies). Cancellation flows into the grain call
/// (Orleans cancels the remote enumeration) and is repeated with an explicit Cancel, so the coordinator
/// closes every model session on every silo. Cluster errors become OpenAI error bodies.
/// </summary>
public sealed class OrleansGenerationBackend(IClusterClient client, GatewayOptions options, ILogger<OrleansGenerationBackend> log) : IGenerationBackend
{
    public Task<ClusterModels> GetModelsAsync(CancellationToken cancellationToken) =>
        client.GetGrain<IModelDirectoryGrain>(DirectoryKeys.Default).GetModels().WaitAsync(cancellationToken);

    public async Task<TokenizeResult> TokenizeAsync(string model, TokenizeRequest request, CancellationToken cancellationToken)
    {
        try { return await client.GetGrain<IModelGrain>(model).Tokenize(request).WaitAsync(cancellationToken); }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested) { throw Translate(ex, isChat: request.Messages is not null); }
    }

    public async Task<string> DetokenizeAsync(string model, int[] tokens, CancellationToken cancellationToken)
    {
        try { return await client.GetGrain<IModelGrain>(model).Detokenize(tokens).WaitAsync(cancellationToken); }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested) { throw Translate(ex, isChat: false); }
    }

    public async IAsyncEnumerable<GenerationUpdate> RunAsync(string generationId, GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // The coordinator frees its sessions soon after this gateway dies (it stops renewing the lease).
        request = request with { ConsumerLeaseSeconds = options.CoordinatorLeaseSeconds };
        // GenerationClient resumes on a new coordinator (same output) if the coordinator's silo dies mid-stream.
        await using var events = GenerationClient.StreamAsync(client, request, generationId, cancellationToken).GetAsyncEnumerator(cancellationToken);
        using var onCancel = cancellationToken.Register(() => _ = CancelAsync(request.Combination.Base, generationId, request.TenantId));
        while (true)
        {
            TokenEvent e;
            try
            {
                if (!await events.MoveNextAsync()) yield break;
                e = events.Current;
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                throw Translate(ex, isChat: request.Messages is not null);
            }
            if (e.Finish == FinishKind.Error)
                throw new ApiError(500, $"The generation failed on the cluster: {e.Error}", "server_error", null, "generation_failed", "generation_failed");
            if (e.Finish == FinishKind.Cancelled)
                throw new ClusterCancelledException();
            yield return new TextDelta(e.Text, e.TokenId >= 0 ? 1 : 0,
                e.TopTokens is { } top && e.TokenId >= 0 ? new StepTokens(e.TokenId, top, e.ChosenProbabilities ?? [], e.ChosenLogprobs ?? []) : null,
                e.TokenId >= 0 ? e.Logprobs : null, e.PromptLogprobs);
            if (e.Finish != FinishKind.None)
            {
                var usage = e.Usage ?? new UsageInfo(0, e.Step + (e.TokenId >= 0 ? 1 : 0));
                yield return new Finished(e.Finish == FinishKind.Length ? "length" : "stop", usage.PromptTokens, usage.CompletionTokens,
                    e.Stats is { Steps: > 0 } st ? st.StepMs : null, e.Stats is { Steps: > 0 } sm ? sm.ModelMs : null);
                yield break;
            }
        }
    }

    async Task CancelAsync(string baseModel, string generationId, string tenant)
    {
        try
        {
            // Every attempt: after a resume the live coordinator runs under another key.
            await GenerationClient.CancelAllAttemptsAsync(client, baseModel, generationId, tenant).WaitAsync(TimeSpan.FromSeconds(5));
            log.LogInformation("Cancelled generation {GenerationId} on the cluster", generationId);
        }
        catch (Exception e) { log.LogWarning(e, "Cancel of generation {GenerationId} failed", generationId); }
    }

    static Exception Translate(Exception ex, bool isChat)
    {
        return ex switch
        {
            ApiError a => a,
            InvalidRequestException ir => ApiError.Invalid(MapField(ir.Field, isChat), ir.Message,
                ir.Message.Contains("context", StringComparison.OrdinalIgnoreCase) ? "context_length_exceeded" : "invalid_value"),
            ModelNotHostedException nh => ApiError.Unavailable(nh.Message, "model_not_hosted"),
            CapacityExceededException ce => new ApiError(503, ce.Message, "server_error", null, "capacity_exceeded", "capacity_exceeded", TimeSpan.FromSeconds(2)),
            AccessDeniedException ad => ApiError.NotFound(ad.Message),
            ProxyOrleansException pe => new ApiError(500, pe.Message, "server_error", null, "cluster_error", "cluster_error"),
            TimeoutException => ApiError.Unavailable("The cluster did not answer in time; retry.", "cluster_timeout"),
            Orleans.Runtime.SiloUnavailableException or Orleans.Runtime.OrleansMessageRejectionException
                => ApiError.Unavailable($"The cluster is unavailable: {ex.Message}", "cluster_unavailable"),
            _ => ex,
        };
    }

    // The cluster names the field of its own request; say it in the client's terms.
    static string MapField(string field, bool isChat) => field switch
    {
        "Prompt" or "prompt" or "Messages" or "messages" => isChat ? "messages" : "prompt",
        "MaxNewTokens" or "Sampling.MaxNewTokens" => "max_tokens",
        "Temperature" or "Sampling.Temperature" => "temperature",
        "TopP" or "Sampling.TopP" => "top_p",
        "Stop" or "Sampling.Stop" => "stop",
        "Alpha" or "Combination.Alpha" => "alpha",
        "answer_cue" => "proxy.answer_cue",
        "prompt_logprobs" => isChat ? "logprobs" : "echo",
        _ => field,
    };
}

/// <summary>The coordinator ended the generation as cancelled without this gateway asking (a DELETE on another replica).</summary>
public sealed class ClusterCancelledException() : OperationCanceledException("The generation was cancelled on the cluster.");
