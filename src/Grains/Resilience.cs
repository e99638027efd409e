using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace ProxyOrleans.Grains;

/// <summary>
/// Polly pipelines for grain calls: a timeout per attempt and retries with backoff on transient faults only —
/// a silo that went away (its grains re-activate elsewhere once membership declares it dead), timeouts,
/// rejected messages, a draining silo. "No active nodes are compatible" (nobody hosts the model) and
/// request errors are not retried.
/// </summary>
public static class Resilience
{
    /// <summary>
    /// Worth retrying: the target silo is gone or unreachable, the call timed out, the silo is draining. Not
    /// transient: "No active nodes are compatible" (a plain OrleansException: nobody hosts the model), request
    /// errors, capacity errors, a lost session (re-opened by the coordinator instead).
    /// </summary>
    public static bool IsTransient(Exception e) => e is SiloUnavailableException or TimeoutException or TimeoutRejectedException
        or OrleansMessageRejectionException or Models.ModelDrainingException;

    public static ResiliencePipeline CreateCallPipeline(TimeSpan attemptTimeout, int retries = 10) =>
        new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<Exception>(IsTransient),
                MaxRetryAttempts = retries,
                Delay = TimeSpan.FromMilliseconds(200),
                MaxDelay = TimeSpan.FromSeconds(2),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                // A draining silo refuses at once and the caller has already moved to another replica: retry without waiting.
                DelayGenerator = args => new ValueTask<TimeSpan?>(args.Outcome.Exception is Models.ModelDrainingException ? TimeSpan.Zero : null),
            })
            .AddTimeout(attemptTimeout)
            .Build();
}
