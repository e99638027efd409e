namespace ProxyOrleans.Gateway;

/// <summary>Gateway limits, from configuration section ProxyOrleans:Gateway.</summary>
public sealed class GatewayOptions
{
    /// <summary>Longest prompt (or all chat messages together) in characters.</summary>
    public int MaxPromptChars { get; set; } = 16_384;
    /// <summary>Upper bound of max_tokens / max_completion_tokens.</summary>
    public int MaxTokensLimit { get; set; } = 4096;
    /// <summary>max_tokens when the request gives none.</summary>
    public int DefaultMaxTokens { get; set; } = 128;
    /// <summary>temperature when the request gives none (OpenAI's default is 1).</summary>
    public float DefaultTemperature { get; set; } = 1f;
    /// <summary>Upper bound of n (generations per prompt) and of prompts × n.</summary>
    public int MaxChoices { get; set; } = 8;
    /// <summary>At most this many stop sequences (OpenAI allows 4), each at most MaxStopChars long.</summary>
    public int MaxStopSequences { get; set; } = 4;
    public int MaxStopChars { get; set; } = 256;
    /// <summary>|alpha| and |weight| bound: larger values only produce garbage.</summary>
    public float MaxAbsAlpha { get; set; } = 100f;
    /// <summary>Largest request body accepted (bytes).</summary>
    public long MaxRequestBodyBytes { get; set; } = 1 << 20;
    /// <summary>No tenants configured: serve everything without a key, to loopback callers only (the local main job).</summary>
    public bool AllowAnonymous { get; set; }
    /// <summary>
    /// Lifetime of a running request's quota lease (concurrency slots) in seconds; the gateway renews it every third of
    /// that while the request runs, so a gateway that dies frees its tenants' slots within this time.
    /// </summary>
    public double QuotaLeaseSeconds { get; set; } = 30;
    /// <summary>
    /// Consumer lease of each generation's coordinator in seconds: the gateway renews it every third of that while it
    /// reads the stream, and a coordinator whose lease lapses (this gateway died) cancels and frees its model sessions'
    /// KV within 1.2 × this time. Lower frees memory sooner after a crash; too low cancels live streams whose renewals
    /// are delayed (three missed renewals in a row). 0 turns it off (Orleans then drops the stream after about a minute).
    /// </summary>
    public double CoordinatorLeaseSeconds { get; set; } = 5;
    /// <summary>
    /// On SIGTERM: seconds the gateway keeps accepting requests while /readyz already answers 503, so that a load
    /// balancer reading /readyz stops sending before the listeners close. 0 under Kubernetes, whose preStop pause
    /// does this (the pod leaves the Service's endpoints before SIGTERM).
    /// </summary>
    public double DrainDelaySeconds { get; set; }
    /// <summary>
    /// On SIGTERM, after the delay: seconds running requests (streams included) get to finish. Those still running then
    /// end with a 503 / a last SSE error event (code gateway_draining) that says to retry, and free their quota slots
    /// and model sessions. The host's shutdown timeout is raised to delay + grace + 10 s.
    /// </summary>
    public double DrainGraceSeconds { get; set; } = 20;
    /// <summary>How long the list of models hosted by the cluster is cached.</summary>
    public TimeSpan CatalogRefresh { get; set; } = TimeSpan.FromSeconds(5);
}
