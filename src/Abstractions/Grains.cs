namespace ProxyOrleans.Abstractions;

/// <summary>
/// One model (or one replica of it) on a silo that hosts its weights. Key: "name" or "name#replica".
/// Many sessions at once; concurrent sessions' steps run as one batch. Step is idempotent per (session, step):
/// a retried step returns the same logits without advancing twice.
/// </summary>
public interface IModelGrain : IGrainWithStringKey
{
    Task<ModelInfo> GetInfo();

    /// <summary>Tokenizes and prefills the prompt (+ generated tokens); returns the logits for the next step.</summary>
    Task<StepResult> Open(OpenSessionRequest request);

    /// <summary>
    /// Appends <paramref name="token"/> (sampled at step <paramref name="step"/> − 1) and returns the logits for step
    /// <paramref name="step"/>. Throws <see cref="SessionNotFoundException"/> when the session is unknown here (re-open it).
    /// </summary>
    Task<StepResult> Step(string sessionId, int step, int token);

    /// <summary>Frees the session's KV cache. Unknown sessions are ignored.</summary>
    Task Close(string sessionId);

    Task<TokenizerFiles> GetTokenizerFiles();

    /// <summary>POST /tokenize: the model's ids for a prompt or chat messages (a bad request is an <see cref="InvalidRequestException"/>).</summary>
    Task<TokenizeResult> Tokenize(TokenizeRequest request);

    /// <summary>POST /detokenize: the text of ids, special tokens kept (as HF's decode); an id outside the vocabulary is refused.</summary>
    Task<string> Detokenize(int[] tokens);
}

/// <summary>
/// An expert and its anti-expert hosted on one silo: returns only expert − antiExpert (one vector per step
/// instead of two). Key: "expert~antiExpert" or "expert~antiExpert#replica".
/// </summary>
public interface IModelPairGrain : IGrainWithStringKey
{
    /// <param name="expertRequest">Prompt as the expert sees it (chat template applied).</param>
    /// <param name="antiRequest">Prompt as the anti-expert sees it.</param>
    Task<StepResult> Open(OpenSessionRequest expertRequest, OpenSessionRequest antiRequest);
    Task<StepResult> Step(string sessionId, int step, int token);
    Task Close(string sessionId);
}

/// <summary>
/// The coordinator of one generation request. Key: <see cref="GenerationKeys.Create"/>, which places it on a silo
/// hosting the base model when one exists (the base logits then never cross the wire).
/// </summary>
public interface IGenerationGrain : IGrainWithStringKey
{
    /// <summary>
    /// Runs the generation and streams one event per token; the last event has Finish set and Usage.
    /// Cancelling the token (or calling <see cref="Cancel"/>) stops the work on every silo and closes the sessions.
    /// </summary>
    IAsyncEnumerable<TokenEvent> Generate(GenerationRequest request, CancellationToken cancellationToken = default);

    /// <summary>Cancels a running generation; only its tenant may (others get <see cref="AccessDeniedException"/>).</summary>
    [AlwaysInterleave]
    Task Cancel(string tenantId);

    /// <summary>
    /// The caller is alive: extends the consumer lease of a generation started with
    /// <see cref="GenerationRequest.ConsumerLeaseSeconds"/> (interleaved, so that it gets through during a long step or prefill).
    /// </summary>
    [AlwaysInterleave]
    Task RenewLease();
}

/// <summary>Which models are hosted where and which configured combinations are ready (for /v1/models, /readyz).</summary>
public interface IModelDirectoryGrain : IGrainWithIntegerKey
{
    Task<ClusterModels> GetModels();

    /// <summary>Resolves a model name: a configured combination name, or a plain model name (base-only).</summary>
    Task<CombinationSpec?> Resolve(string name);
}

public static class GenerationKeys
{
    /// <summary>Key of a request's coordinator: "{baseModel}/{requestId}" (the prefix decides placement).</summary>
    public static string Create(string baseModel, string requestId) => $"{baseModel}/{requestId}";

    /// <summary>The request id of resume attempt <paramref name="attempt"/> (≥ 1) of <paramref name="requestId"/>: a new coordinator.</summary>
    public static string Resume(string requestId, int attempt) => $"{requestId}.resume{attempt}";

    /// <summary>
    /// The request id every attempt shares and this attempt's number (0: the first), from a coordinator's request id
    /// ("tenant:req:0.resume2" → ("tenant:req:0", 2)). Model sessions of an earlier attempt are freed when a later one opens.
    /// </summary>
    public static (string Root, int Attempt) AttemptOf(string requestId)
    {
        int at = requestId.LastIndexOf(".resume", StringComparison.Ordinal);
        return at >= 0 && int.TryParse(requestId.AsSpan(at + ".resume".Length), out var n) && n > 0 ? (requestId[..at], n) : (requestId, 0);
    }

    /// <summary>A coordinator placed on any silo (no preference; used by the benchmark's "all separate" layout).</summary>
    public static string Anywhere(string requestId) => $"/{requestId}";

    /// <summary>The model name a grain key starts with: up to '/' (coordinators), '#' (replicas) or '~' (pairs).</summary>
    public static string ModelPrefix(string key)
    {
        var end = key.IndexOfAny(['/', '#', '~']);
        return end < 0 ? key : key[..end];
    }
}

/// <summary>
/// One tenant's running requests, cluster-wide (keyed by tenant name): every gateway replica registers the requests it
/// serves, so that GET/DELETE /v1/requests work on any replica. An entry its gateway stops renewing (the gateway died)
/// lapses after <see cref="RunningRequest.LeaseSeconds"/>.
/// </summary>
public interface ITenantRequestsGrain : IGrainWithStringKey
{
    /// <summary>Registers or renews a request.</summary>
    Task Register(RunningRequest request);
    Task Unregister(string requestId);
    Task<RunningRequest[]> List();
    /// <summary>Cancels every generation of the request on its live coordinator (resumed ones included); false: no such request.</summary>
    Task<bool> Cancel(string requestId);
}

/// <param name="GenerationIds">The coordinators' generation ids (one per prompt × choice), as passed to GenerationClient.</param>
[GenerateSerializer, Immutable]
public sealed record RunningRequest(
    [property: Id(0)] string Id, [property: Id(1)] string Tenant, [property: Id(2)] string Model, [property: Id(3)] string BaseModel,
    [property: Id(4)] long CreatedUnixSeconds, [property: Id(5)] string[] GenerationIds, [property: Id(6)] double LeaseSeconds = 30);

/// <summary>Directory grain's key (one per cluster, stateless so any silo may answer).</summary>
public static class DirectoryKeys
{
    public const long Default = 0;
}

/// <summary>
/// One tenant's quotas, shared by every gateway replica (keyed by tenant name): a token bucket for requests/min,
/// one for tokens/min, and a concurrency counter. The limits travel with each call (the gateways own the tenant list).
/// </summary>
public interface ITenantQuotaGrain : IGrainWithStringKey
{
    /// <summary>Admits a request of <paramref name="generations"/> generations, or says which limit refuses it.</summary>
    /// <param name="promptTokens">The prompt tokens of the whole request as far as the gateway can tell before tokenizing
    /// (an estimate; the settlement at <see cref="Release"/> charges the real count).</param>
    Task<QuotaDecision> Admit(QuotaLimits limits, int generations, int maxTokensPerGeneration, int promptTokens);

    /// <summary>
    /// Keeps a running request's lease alive (its gateway calls this while the request runs). A lease not renewed within
    /// <see cref="QuotaLimits.LeaseSeconds"/> lapses and frees its concurrency slots: its gateway died. False: it had lapsed.
    /// </summary>
    Task<bool> Renew(QuotaLimits limits, QuotaLease lease);

    /// <summary>Ends a request: frees its concurrency slots and replaces its token reservation with what it used.</summary>
    Task Release(QuotaLimits limits, QuotaLease lease, long tokensUsed);

    /// <summary>Generations running now.</summary>
    Task<int> Active();
}

[GenerateSerializer, Immutable]
public sealed record QuotaLimits([property: Id(0)] int RequestsPerMinute, [property: Id(1)] int TokensPerMinute, [property: Id(2)] int MaxConcurrency,
    [property: Id(3)] double LeaseSeconds = 30);

[GenerateSerializer, Immutable]
public sealed record QuotaLease([property: Id(0)] int Reserved, [property: Id(1)] int Generations, [property: Id(2)] Guid Id);

/// <summary>Admitted (<see cref="Lease"/>), or refused with an OpenAI error code, a message and how long to wait.</summary>
[GenerateSerializer, Immutable]
public sealed record QuotaDecision(
    [property: Id(0)] QuotaLease? Lease, [property: Id(1)] string? Code, [property: Id(2)] string? Message, [property: Id(3)] double RetryAfterSeconds);
