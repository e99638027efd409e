using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Streams;
using Polly;
using ProxyOrleans.Grains.Hosting;
using ProxyOrleans.Grains.Models;
using ProxyOrleans.Grains.Placement;
using ProxyOrleans.Inference.Decoding;

namespace ProxyOrleans.Grains;

/// <summary>
/// The coordinator of one request. Prefills every model at once, then per step combines, samples and stops with
/// <see cref="ProxyStep"/> — the code the single-process decoder runs, so the output is the same token for
/// token — and calls every model at once with the new token. A model whose session is lost (its silo died, it
/// drained, it idled out) is re-opened on another replica by prefilling the tokens so far; the step continues
/// with the logits it would have had.
/// </summary>
// Not deactivated explicitly at the end: the caller may still be disposing its enumerator; idle coordinators
// are collected after a short age instead.
[ModelPlacementFilter, CollectionAgeLimit(Minutes = 2)]
public sealed partial class GenerationGrain(
    ModelDirectory directory, HostedModels hosted, TokenizerCache tokenizers, IOptions<ProxyOrleansOptions> options,
    ILogger<GenerationGrain> log) : Grain, IGenerationGrain
{
    private readonly ModelDirectory _directory = directory;
    private readonly HostedModels _hosted = hosted;
    private readonly TokenizerCache _tokenizers = tokenizers;
    private readonly ILogger _log = log;
    private CancellationTokenSource? _cts;
    private string? _tenant;
    private bool _running;
    private readonly ResiliencePipeline _pipeline = Resilience.CreateCallPipeline(TimeSpan.FromSeconds(options.Value.StepTimeoutSeconds));

    // A cancel that arrived before the generation started (a resume not yet begun): by which tenant.
    private string? _cancelledBeforeStart;

    // The consumer lease (GenerationRequest.ConsumerLeaseSeconds): renewed by the caller and by every token it pulls. A
    // dead caller's enumeration is suspended at a yield and is only disposed when Orleans drops it (about a minute), so
    // a timer, not the loop, notices the lapse and frees the sessions.
    private long _leaseTicks, _leaseExpires;
    private IGrainTimer? _leaseTimer;
    private Run? _run;
    private bool _consumerLost;

    public Task RenewLease()
    {
        if (_leaseTicks > 0) _leaseExpires = Stopwatch.GetTimestamp() + _leaseTicks;
        return Task.CompletedTask;
    }

    private void StartConsumerLease(double seconds)
    {
        _leaseTicks = (long)(seconds * Stopwatch.Frequency);
        _leaseExpires = Stopwatch.GetTimestamp() + _leaseTicks;
        // Checked five times per lease: the sessions are freed at most a fifth of a lease after it lapsed.
        var every = TimeSpan.FromSeconds(Math.Max(0.05, seconds / 5));
        _leaseTimer = this.RegisterGrainTimer(CheckConsumerLeaseAsync, new GrainTimerCreationOptions(every, every) { Interleave = true, KeepAlive = false });
    }

    private async Task CheckConsumerLeaseAsync(CancellationToken _)
    {
        if (!_running || _consumerLost || _run is not { } run || Stopwatch.GetTimestamp() < _leaseExpires) return;
        _consumerLost = true;
        _leaseTimer?.Dispose();
        _log.LogWarning("Request {Request}: its caller stopped renewing its {Lease:F1} s lease (gateway gone?): cancelling it and closing its {Slots} model sessions",
            this.GetPrimaryKeyString(), _leaseTicks / (double)Stopwatch.Frequency, run.Slots.Count);
        _cts?.Cancel();
        await Task.WhenAll(run.Slots.Select(s => s.CloseQuietly()));
    }

    public Task Cancel(string tenantId)
    {
        if (_tenant is not null && !string.Equals(_tenant, tenantId, StringComparison.Ordinal))
            throw new AccessDeniedException("This request belongs to another tenant.");
        if (_cts is null) _cancelledBeforeStart = tenantId;
        _cts?.Cancel();
        return Task.CompletedTask;
    }

    public async IAsyncEnumerable<TokenEvent> Generate(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (_running) throw new InvalidRequestException("request_id", $"Request '{this.GetPrimaryKeyString()}' is already running.");
        if (_hosted.Draining)
        {
            // Placed here before the cluster learnt of the drain: the client starts over on a new coordinator elsewhere.
            this.DeactivateOnIdle();
            throw _hosted.RefuseCoordinator($"Silo {_directory.LocalSilo} is draining: the generation starts on another coordinator.");
        }
        request = request.WithPromptScoredAsSent();
        var sampling = Validate(request);
        _running = true;
        _tenant = request.TenantId;
        _cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var ct = _cts.Token;
        if (string.Equals(_cancelledBeforeStart, request.TenantId, StringComparison.Ordinal))
        {
            // Cancelled before it began (the cancel reached this resumed attempt first): nothing to open or close.
            _running = false;
            yield return new TokenEvent { Step = request.ResumeTokens.Length, TokenId = -1, Text = "", Finish = FinishKind.Cancelled, Seed = sampling.Seed ?? 0 };
            yield break;
        }
        var requestId = this.GetPrimaryKeyString();
        var run = _run = new Run(this, request, requestId);
        (_consumerLost, _leaseTicks) = (false, 0); // nothing left from an earlier run of this activation
        if (request.ConsumerLeaseSeconds > 0) StartConsumerLease(request.ConsumerLeaseSeconds);
        Task<StepResult[]>? pending = null;
        // True while a token is handed out: if the enumeration ends there, the caller stopped (disconnected,
        // cancelled, disposed its enumerator) — a cancellation, not an error.
        bool handedOut = false;
        try
        {
            var results = await run.OpenAsync(sampling, ct);
            await Publish(request, GenerationEventKind.Started, requestId, e => e);
            if (run.State!.IsFinished) yield return run.ScoredOnly(); // max_tokens 0: the scored prompt and nothing else
            while (!run.State.IsFinished)
            {
                if (ct.IsCancellationRequested)
                {
                    // The caller is gone: it will not dispose this enumeration, so a session opened after the lapse
                    // (an open or failover that was in flight) is closed here rather than in the finally.
                    if (_consumerLost) await Task.WhenAll(run.Slots.Select(s => s.CloseQuietly()));
                    yield return run.Cancelled();
                    break;
                }
                var token = run.Decide(results);
                if (token.Finish != FinishKind.None)
                {
                    yield return token;
                    break;
                }
                // Every model at once, started before the token is handed to the caller so that the models compute
                // while the token travels (the next step only needs this token).
                pending = run.StepAllAsync(token.TokenId, ct);
                long handedAt = Stopwatch.GetTimestamp();
                handedOut = true;
                yield return token;
                handedOut = false;
                await RenewLease(); // the caller pulled the next token: it is alive
                run.Figures.Streamed(handedAt);
                var next = await UnlessCancelled(pending, ct);
                pending = null;
                if (next is null) continue; // cancelled: the loop's top ends the generation with a Cancelled event
                run.Stepped(next);
                results = next;
            }
        }
        finally
        {
            _running = false;
            _leaseTimer?.Dispose();
            pending?.ContinueWith(t => _ = t.Exception, TaskScheduler.Default); // abandoned step (caller stopped): observe it
            foreach (var s in run.Slots) _ = s.CloseQuietly();
            // Stopped by the caller or a Cancel (also when that interrupted a call): Cancelled; an unfinished run otherwise failed.
            var cancelled = handedOut || ct.IsCancellationRequested;
            if (cancelled && run.State is { IsFinished: false } unfinished) unfinished.Finish(FinishReason.Cancelled);
            var finish = run.State is { IsFinished: true } st ? Map(st.FinishReason) : cancelled ? FinishKind.Cancelled : FinishKind.Error;
            await Publish(request, GenerationEventKind.Finished, requestId,
                e => e with { Step = run.State?.Step ?? 0, Finish = finish, MeanStepMs = run.Figures.MeanStepMs });
        }
    }

    private static async Task<StepResult[]?> UnlessCancelled(Task<StepResult[]> step, CancellationToken ct)
    {
        try { return await step; }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { return null; }
    }

    private static FinishKind Map(FinishReason r) => r switch
    {
        FinishReason.Length => FinishKind.Length,
        FinishReason.Stop => FinishKind.Stop,
        FinishReason.Eos => FinishKind.Eos,
        FinishReason.Cancelled => FinishKind.Cancelled,
        FinishReason.None => FinishKind.Error,
        _ => FinishKind.Error,
    };

    private static SamplingOptions Validate(GenerationRequest r)
    {
        if (r.Combination is null || string.IsNullOrWhiteSpace(r.Combination.Base))
            throw new InvalidRequestException("model", "The combination needs a base model.");
        if (!float.IsFinite(r.Combination.Alpha)) throw new InvalidRequestException("alpha", $"Alpha must be a finite number; got {r.Combination.Alpha}.");
        foreach (var e in r.Combination.Experts ?? [])
        {
            if (string.IsNullOrWhiteSpace(e.Expert) || string.IsNullOrWhiteSpace(e.AntiExpert))
                throw new InvalidRequestException("experts", "Each expert pair needs an expert and an anti-expert model.");
            if (!float.IsFinite(e.Weight)) throw new InvalidRequestException("experts", $"Weight of {e.Expert} must be finite; got {e.Weight}.");
        }
        if (string.IsNullOrEmpty(r.Prompt) && r.Messages is not { Length: > 0 } && r.PromptTokenIds is not { Length: > 0 })
            throw new InvalidRequestException("prompt", "Give a non-empty prompt, prompt token ids or at least one chat message.");
        if (CombinationSpec.AnswerCueProblem(r.Combination.AnswerCue) is { } cueProblem)
            throw new InvalidRequestException("answer_cue", cueProblem);
        if (r.PromptTokenIds is not null && ProxyPrompt.TokenIdsCueProblem(r.Combination.AnswerCue) is { } idsCueProblem)
            throw new InvalidRequestException("answer_cue", idsCueProblem);
        var s = r.Sampling ?? new SamplingSpec();
        var options = s.ToSamplingOptions();
        try { Sampler.Validate(options); }
        catch (ArgumentException e) { throw new InvalidRequestException(SamplingField(e), e.Message); } // the processors name their field
        foreach (var (top, field) in new[] { (r.Logprobs, "logprobs"), (r.PromptLogprobs, "prompt_logprobs") })
            if (top is < 0 or > TokenLogprobs.MaxTop)
                throw new InvalidRequestException(field, $"'{field}' asks for {top} top alternatives; give 0..{TokenLogprobs.MaxTop}.");
        if (!double.IsFinite(r.ConsumerLeaseSeconds) || r.ConsumerLeaseSeconds < 0)
            throw new InvalidRequestException("consumer_lease_seconds", $"The consumer lease must be 0 (none) or a positive number of seconds; got {r.ConsumerLeaseSeconds}.");
        if (r.ResumeTokens.Length > 0 && s.Seed is null)
            throw new InvalidRequestException("resume_tokens", "Resuming needs the seed of the first attempt (TokenEvent.Seed).");
        return options with { Seed = options.Seed ?? Sampler.NewSeed() };
    }

    private async Task Publish(GenerationRequest request, GenerationEventKind kind, string requestId, Func<GenerationEvent, GenerationEvent> with)
    {
        try
        {
            var provider = this.GetStreamProvider(StreamNames.Provider);
            var e = with(new GenerationEvent
            {
                RequestId = requestId, TenantId = request.TenantId, Kind = kind,
                Combination = Describe(request.Combination),
            });
            await Task.WhenAll(
                provider.GetStream<GenerationEvent>(StreamId.Create(StreamNames.GenerationEvents, request.TenantId)).OnNextAsync(e),
                provider.GetStream<GenerationEvent>(StreamId.Create(StreamNames.GenerationEvents, StreamNames.AllTenants)).OnNextAsync(e));
        }
        catch (Exception e) { log.LogDebug(e, "Publishing a generation event failed"); } // observers are best effort
    }

    internal static string Describe(CombinationSpec c) =>
        c.Experts.Length == 0 ? c.Base
            : $"{c.Base} + {c.Alpha}·({string.Join(" + ", c.Experts.Select(e => $"{e.Weight}·({e.Expert} − {e.AntiExpert})"))})";
}
