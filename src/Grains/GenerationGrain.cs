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
using ProxyOrleans.Inference.Tokenization;

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

    /// <summary>One request's run: its slots, how the pairs read from them, the decoding state and its figures.</summary>
    private sealed partial class Run(GenerationGrain owner, GenerationRequest request, string requestId)
    {
        public readonly List<Slot> Slots = [];
        private readonly List<PairRoute> _pairs = [];
        private readonly List<string> _layout = [];
        public readonly Figures Figures = new();
        public GenerationState? State;
        private ProxyStep? _step;
        private ITextTokenizer? _tokenizer;
        private int _promptTokens;
        private long _stepStart, _fanOutStart;
        private TokenLogprobsSpec[]? _promptLogprobs; // handed out with the first event, then null

        /// <summary>
        /// Opens a session on every model at once (prefilling prompt + resumed tokens), checks that they share the base's
        /// vocabulary and starts the decoding state; returns the logits for the first step.
        /// </summary>
        public async Task<StepResult[]> OpenAsync(SamplingOptions sampling, CancellationToken ct)
        {
            foreach (var m in request.Combination.Models) owner._directory.EnsureHosted(m);
            var tokenizerTask = owner._tokenizers.GetAsync(request.Combination.Base);
            BuildSlots();
            long start = Stopwatch.GetTimestamp();
            var opened = await Task.WhenAll(Slots.Select(s => Call(s, () => s.Open(request.ResumeTokens), ct)));
            Figures.PrefillMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            _tokenizer = await tokenizerTask;
            var promptIds = opened[0].PromptIds ?? [];
            _promptTokens = promptIds.Length;
            await CheckVocabulariesAsync(opened);
            // EOS ids and the context window as the single-process decoder takes them (the tokenizer's EOS list;
            // room after the prompt in the tightest model): GenerationState applies both.
            int room = opened.Min(o => o.ContextRoom);
            State = StartState(_tokenizer, sampling, request.ResumeTokens, promptIds, room);
            _step = new ProxyStep(request.Combination.Alpha, [.. request.Combination.Experts.Select(e => e.Weight)]) { TopLogprobs = request.Logprobs };
            if (ScoresPrompt) _promptLogprobs = ScorePrompt(opened, promptIds);
            return opened;
        }

        /// <summary>Combine → sample → stop on one step's results (<see cref="ProxyStep"/>); the event to hand out.</summary>
        public TokenEvent Decide(StepResult[] results)
        {
            _stepStart = Stopwatch.GetTimestamp();
            var logits = Array.ConvertAll(results, LogitsCodec.ToFloats);
            Figures.Decoded(_stepStart);
            int at = State!.Step;
            var outcome = _step!.Advance(State, logits[0].Span, [.. _pairs.Select(p => p.Read(logits))]);
            var token = new TokenEvent
            {
                Step = at, TokenId = outcome.TokenId, Text = outcome.TextDelta, Seed = State.Seed,
                Logits = request.ReturnLogits ? LogitsCodec.Encode(_step.Combined, LogitsPrecision.Float32) : null,
                TopTokens = request.TopTokens > 0 ? TopTokens(logits) : null,
                ChosenProbabilities = request.TopTokens > 0 && outcome.TokenId >= 0 ? ChosenProbabilities(logits, outcome.TokenId) : null,
                ChosenLogprobs = request.TopTokens > 0 && outcome.TokenId >= 0 ? ChosenLogprobs(logits, outcome.TokenId) : null,
                Logprobs = _step.LastLogprobs?.ToSpec(_tokenizer!),
                PromptLogprobs = TakePromptLogprobs(),
            };
            return outcome.IsFinal ? token with { Finish = Map(outcome.Finish), Usage = Usage(), Stats = Stats() } : token;
        }

        /// <summary>Appends the token to every model at once; the task gives the next step's results.</summary>
        public Task<StepResult[]> StepAllAsync(int token, CancellationToken ct)
        {
            _fanOutStart = Stopwatch.GetTimestamp();
            int step = State!.Step;
            return Task.WhenAll(Slots.Select(s => Call(s, () => s.Step(step, token), ct)));
        }

        public void Stepped(StepResult[] results) => Figures.Stepped(_stepStart, _fanOutStart, results, Slots);

        /// <summary>The last event of a run the caller cancelled (with the text held back so far).</summary>
        public TokenEvent Cancelled() => new()
        {
            Step = State!.Step, TokenId = -1, Text = State.Finish(FinishReason.Cancelled), Finish = FinishKind.Cancelled,
            Seed = State.Seed, Usage = Usage(), Stats = Stats(),
        };

        private UsageInfo Usage() => new(_promptTokens, State?.Step ?? 0);

        private GenerationStats Stats() => Figures.ToStats(_step, owner._directory.LocalSilo.ToString(), string.Join(" ", _layout));

        private void BuildSlots()
        {
            var spec = request.Combination;
            var grains = owner.GrainFactory;
            string session = $"{requestId}@{Guid.NewGuid():N}";
            var (root, attempt) = GenerationKeys.AttemptOf(requestId);
            // One session id per slot: a model used twice (anti-expert = base) holds two sessions in the same worker.
            OpenSessionRequest Req(bool chat) => new()
            {
                SessionId = $"{session}/{Slots.Count}", Prompt = request.Prompt, Messages = request.Messages, PromptTokenIds = request.PromptTokenIds, ApplyChatTemplate = chat,
                AnswerCue = spec.AnswerCue, ExpertResponsePrefix = spec.ExpertResponsePrefix,
                Precision = request.Precision, MaxNewTokens = Math.Max(1, request.Sampling.MaxNewTokens), TenantId = request.TenantId,
                Generation = $"{request.TenantId}/{root}", Attempt = attempt, ScorePrompt = ScoresPrompt,
                CoordinatorSilo = owner._directory.LocalSilo.ToString(),
            };
            // The base: the local replica when this silo hosts it (its logits never cross the wire), and always fp32
            // there (a local call copies nothing, so fp16 would only cost accuracy).
            var baseLocal = IsLocal(spec.Base);
            var baseReq = Req(spec.BaseChatTemplate && request.ExpertChatTemplate) with { Precision = baseLocal ? LogitsPrecision.Float32 : request.Precision };
            Slots.Add(new ModelSlot(grains, spec.Base, ReplicaFor(spec.Base), baseReq) { Label = spec.Base, Local = baseLocal });
            _layout.Add($"{spec.Base}:{(baseLocal ? "local" : "remote")}");
            var baseVocab = owner._hosted.Find(spec.Base)?.VocabSize ?? 0;
            foreach (var p in spec.Experts)
            {
                if (request.CoHostedPairs && owner._directory.SilosHosting(p.Expert, p.AntiExpert).Count > 0)
                {
                    var key = $"{p.Expert}~{p.AntiExpert}";
                    var local = IsLocal(p.Expert, p.AntiExpert);
                    var expert = Req(request.ExpertChatTemplate) with { Weight = p.Weight, OutputVocab = baseVocab };
                    _pairs.Add(new CoHostedPair(Slots.Count));
                    Slots.Add(new PairSlot(grains, key, ReplicaFor(p.Expert, p.AntiExpert), expert, Req(false)) { Label = SlotLabel(key), Local = local });
                    _layout.Add($"{key}:pair{(local ? "(local)" : "")}");
                }
                else
                {
                    _pairs.Add(new SeparatePair(Slots.Count, Slots.Count + 1));
                    Slots.Add(new ModelSlot(grains, p.Expert, ReplicaFor(p.Expert), Req(request.ExpertChatTemplate)) { Label = SlotLabel(p.Expert), Local = IsLocal(p.Expert) });
                    Slots.Add(new ModelSlot(grains, p.AntiExpert, ReplicaFor(p.AntiExpert), Req(false)) { Label = SlotLabel(p.AntiExpert), Local = IsLocal(p.AntiExpert) });
                    _layout.Add($"{p.Expert}:remote,{p.AntiExpert}:remote");
                }
            }
        }

        /// <summary>A slot's label (top tokens, logs), made unique when a model appears twice: "base-small", then "base-small (2)".</summary>
        private string SlotLabel(string name)
        {
            var label = name;
            for (int k = 2; Slots.Any(s => s.Label == label); k++) label = $"{name} ({k})";
            return label;
        }

        private bool IsLocal(params string[] models) => models.All(m => owner._hosted.Find(m) is not null);

        /// <summary>Replica index of a model (or pair): this silo's when it hosts it, else spread by request.</summary>
        private int ReplicaFor(params string[] models)
        {
            var silos = owner._directory.SilosHosting(models);
            if (silos.Count == 0) return 0;
            for (int i = 0; i < silos.Count; i++) if (silos[i].Equals(owner._directory.LocalSilo)) return i;
            // By the attempts' shared id: a resumed attempt lands on the replicas of the first and frees its sessions there.
            return (int)((uint)StableHash(GenerationKeys.AttemptOf(requestId).Root + string.Join("~", models)) % (uint)silos.Count);
        }

        private static int StableHash(string s)
        {
            unchecked { int h = 17; foreach (var c in s) h = h * 31 + c; return h; }
        }

        /// <summary>A call with retries on transient faults; a lost session is re-opened (tokens so far prefilled).</summary>
        private async Task<StepResult> Call(Slot slot, Func<Task<StepResult>> call, CancellationToken ct)
        {
            try
            {
                return await owner._pipeline.ExecuteAsync(async t =>
                {
                    // A drain refusal moves to the next replica before the retry (at once: no backoff for drains),
                    // instead of retrying the draining silo until the attempts run out.
                    try { return await call().WaitAsync(t); }
                    catch (ModelDrainingException) { slot.NextReplica(); throw; }
                }, ct);
            }
            catch (Exception e) when (State is not null && !ct.IsCancellationRequested &&
                                      (e is SessionNotFoundException || Resilience.IsTransient(e)))
            {
                Figures.Failovers++;
                var generated = State.GeneratedTokens.ToArray();
                owner._log.LogWarning("Request {Request}: {Model} lost its session ({Error}); re-opening with {Tokens} tokens prefilled",
                    requestId, slot.Label, e.GetType().Name, generated.Length);
                await owner.Publish(request, GenerationEventKind.Failover, requestId, x => x with { Step = generated.Length, Detail = $"{slot.Label}: {e.GetType().Name}" });
                return await owner._pipeline.ExecuteAsync(async t =>
                {
                    try { return await slot.Open(generated).WaitAsync(t); }
                    catch (ModelDrainingException) { slot.NextReplica(); throw; }
                }, ct);
            }
            catch (OrleansException e) when (e.Message.Contains("No active nodes are compatible"))
            {
                throw new ModelNotHostedException(slot.Label, owner._directory.HostedModels().Select(h => h.Name));
            }
        }

        /// <summary>
        /// Every model must share the base's vocabulary (every sampled id is appended to all of them): the models report
        /// their tokenizer's fingerprint at open, and the coordinator runs the single-process path's VocabularyCheck
        /// (same refusal, same message; a few extra expert tokens allowed and truncated as the reference does).
        /// </summary>
        private async Task CheckVocabulariesAsync(StepResult[] opened)
        {
            // A model used twice reports its vocabulary twice: one entry per model.
            var ids = opened.SelectMany(o => o.Vocabularies ?? []).GroupBy(v => v.Model, StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
            var spec = request.Combination;
            if (!ids.TryGetValue(spec.Base, out var baseId)) return; // a silo of an older version: nothing to compare
            var checks = new List<Task>();
            foreach (var p in spec.Experts)
            {
                if (ids.TryGetValue(p.Expert, out var e)) checks.Add(owner._tokenizers.EnsureSameVocabularyAsync(baseId, e, "expert"));
                if (ids.TryGetValue(p.AntiExpert, out var a)) checks.Add(owner._tokenizers.EnsureSameVocabularyAsync(baseId, a, "anti-expert"));
            }
            await Task.WhenAll(checks);
        }
    }
}
