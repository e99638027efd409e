using System.Runtime.CompilerServices;

namespace ProxyOrleans.Abstractions;

/// <summary>
/// Runs a generation through its coordinator grain and survives the coordinator's silo dying: the tokens
/// received so far and the seed are enough to resume on a new coordinator (it prefills them), and because
/// randomness depends only on (seed, step) the continuation is exactly what the first attempt would have produced.
/// Gateways and the CLI use this instead of calling <see cref="IGenerationGrain.Generate"/> directly.
/// </summary>
public static class GenerationClient
{
    /// <summary>Faults after which a new coordinator can pick up (the old one's silo is gone or unreachable).</summary>
    public static bool IsCoordinatorLost(Exception e) =>
        e is SiloUnavailableException or TimeoutException or OrleansMessageRejectionException
            or EnumerationAbortedException or CoordinatorDrainingException;

    /// <summary>
    /// Resumes <see cref="StreamAsync"/> attempts at most (its default): with <see cref="ResumeDelay"/> they span about
    /// 64 s, longer than Orleans' default failure detection takes to declare a dead silo dead (probes every 5 s, 3 missed
    /// probes, then the vote and the table refresh: tens of seconds). Five resumes (7.75 s) gave up before that.
    /// </summary>
    public const int DefaultMaxResumes = 12;

    /// <summary>Wait before resume attempt <paramref name="attempt"/> (≥ 1): 0.25, 0.5, 1, 2, 4, then 8 s each.</summary>
    public static TimeSpan ResumeDelay(int attempt) => TimeSpan.FromMilliseconds(Math.Min(250 << Math.Min(attempt - 1, 5), 8000));

    /// <summary>
    /// Cancels a generation wherever it runs now: its first coordinator and every resumed one (a resume runs under
    /// another key). A coordinator that has not started yet remembers the cancel and ends at once when it does.
    /// </summary>
    public static Task CancelAllAttemptsAsync(IGrainFactory grains, string baseModel, string generationId, string tenantId,
        int maxResumes = DefaultMaxResumes) =>
        Task.WhenAll(Enumerable.Range(0, maxResumes + 1).Select(attempt => grains.GetGrain<IGenerationGrain>(
            GenerationKeys.Create(baseModel, attempt == 0 ? generationId : GenerationKeys.Resume(generationId, attempt))).Cancel(tenantId)));

    public static async IAsyncEnumerable<TokenEvent> StreamAsync(IGrainFactory grains, GenerationRequest request, string requestId,
        [EnumeratorCancellation] CancellationToken cancellationToken = default, int maxResumes = DefaultMaxResumes)
    {
        var tokens = new List<int>(request.ResumeTokens);
        ulong? seed = request.Sampling.Seed;
        for (int attempt = 0; ; attempt++)
        {
            // Until the cluster declares the dead silo dead, placement may still pick it: back off so that the resumes
            // outlast the detection instead of all failing at once.
            if (attempt > 0) await Task.Delay(ResumeDelay(attempt), cancellationToken);
            var r = attempt == 0 || tokens.Count == 0 ? request : request with
            {
                ResumeTokens = tokens.ToArray(),
                Sampling = request.Sampling with { Seed = seed },
            };
            var key = GenerationKeys.Create(request.Combination.Base, attempt == 0 ? requestId : GenerationKeys.Resume(requestId, attempt));
            var grain = grains.GetGrain<IGenerationGrain>(key);
            var e = grain.Generate(r, cancellationToken).GetAsyncEnumerator(cancellationToken);
            using var stopRenewing = new CancellationTokenSource();
            var renewing = request.ConsumerLeaseSeconds > 0 ? RenewLeaseAsync(grain, request.ConsumerLeaseSeconds, stopRenewing.Token) : Task.CompletedTask;
            bool lost = false;
            try
            {
                while (true)
                {
                    bool has;
                    try { has = await e.MoveNextAsync(); }
                    // Nothing received yet: simply start over; otherwise resume from the tokens so far with the same seed.
                    catch (Exception ex) when (IsCoordinatorLost(ex) && attempt < maxResumes && (seed is not null || tokens.Count == 0)
                                               && !cancellationToken.IsCancellationRequested)
                    {
                        lost = true;
                        break;
                    }
                    if (!has) yield break;
                    var ev = e.Current;
                    seed ??= ev.Seed;
                    if (ev.TokenId >= 0) tokens.Add(ev.TokenId);
                    yield return ev;
                    if (ev.Finish != FinishKind.None) yield break;
                }
            }
            finally
            {
                stopRenewing.Cancel();
                await renewing;
                try { await e.DisposeAsync(); } catch { /* the coordinator may be gone */ }
            }
            if (!lost) yield break;
            // Only the path to it may have failed (a stopping silo's gateway drops what it relays) while the coordinator
            // lives on with its model sessions: cancel it, so its KV is freed now and not when Orleans drops the unread
            // enumeration a minute later. The next attempt runs under another key and is not affected.
            if (!await TryCancelAsync(grain, request.TenantId)) _ = RetryCancelAsync(grain, request.TenantId);
        }
    }

    private static async Task<bool> TryCancelAsync(IGenerationGrain grain, string tenantId)
    {
        try { await grain.Cancel(tenantId).WaitAsync(TimeSpan.FromSeconds(2), CancellationToken.None); return true; }
        catch { return false; /* gone, or unreachable */ }
    }

    /// <summary>
    /// The first cancel can be dropped by the same stopping gateway that dropped the stream (its silo's log: "Failed to
    /// address message … Cancel"); seen in a rolling restart, where the old coordinator's sessions then held their KV for
    /// a minute. Later tries go through the other gateways. In the background: the resume does not wait for them.
    /// </summary>
    private static async Task RetryCancelAsync(IGenerationGrain grain, string tenantId)
    {
        for (int attempt = 0; attempt < 4; attempt++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(250 << attempt));
            if (await TryCancelAsync(grain, tenantId)) return;
        }
    }

    /// <summary>
    /// Renews the coordinator's consumer lease every third of it until <paramref name="stop"/>. A failed renewal is only
    /// skipped: if the coordinator is gone, the enumeration itself fails and resumes elsewhere.
    /// </summary>
    private static async Task RenewLeaseAsync(IGenerationGrain grain, double leaseSeconds, CancellationToken stop)
    {
        var every = TimeSpan.FromSeconds(Math.Max(0.1, leaseSeconds / 3));
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(every, stop);
                await grain.RenewLease().WaitAsync(every, stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested) { return; }
            catch (Exception) { /* timed out or the coordinator is unreachable: the next renewal tries again */ }
        }
    }
}
