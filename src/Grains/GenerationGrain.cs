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
/// The coordinator of one request. Prefills every model at once, then per step calls every model at once,
/// combines with <see cref="ProxyCombiner"/> and samples/stops with <see cref="GenerationState"/> — the same code
/// as the single-process decoder, so the output is the same token for token. A model whose session is lost (its
/// silo died, it drained, it idled out) is re-opened on another replica by prefilling the tokens so far; the
/// step continues with the logits it would have had.
/// </summary>
// Not deactivated explicitly at the end: the caller may still be disposing its enumerator; idle coordinators
// are collected after a short age instead.
[ModelPlacementFilter, CollectionAgeLimit(Minutes = 2)]
public sealed class GenerationGrain(
    ModelDirectory directory, HostedModels hosted, TokenizerCache tokenizers, IOptions<ProxyOrleansOptions> options,
    ILogger<GenerationGrain> log) : Grain, IGenerationGrain
{
    private readonly ModelDirectory _directory = directory;
    private readonly HostedModels _hosted = hosted;
    private readonly ILogger _log = log;
    private CancellationTokenSource? _cts;
    private string? _tenant;
    private bool _running;
    private readonly ResiliencePipeline _pipeline = Resilience.CreateCallPipeline(TimeSpan.FromSeconds(options.Value.StepTimeoutSeconds));

    public Task Cancel(string tenantId)
    {
        if (_tenant is not null && !string.Equals(_tenant, tenantId, StringComparison.Ordinal))
            throw new AccessDeniedException("This request belongs to another tenant.");
        _cts?.Cancel();
        return Task.CompletedTask;
    }

    public async IAsyncEnumerable<TokenEvent> Generate(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (_running) throw new InvalidRequestException("request_id", $"Request '{this.GetPrimaryKeyString()}' is already running.");
        var sampling = Validate(request);
        _running = true;
        _tenant = request.TenantId;
        _cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var ct = _cts.Token;
        var requestId = this.GetPrimaryKeyString();
        var spec = request.Combination;
        var run = new Run(this, request, requestId);
        Task<StepResult[]>? pending = null;
        // True while a token is handed out: if the enumeration ends there, the caller stopped (disconnected,
        // cancelled, disposed its enumerator) — a cancellation, not an error.
        bool handedOut = false;
        try
        {
            foreach (var m in spec.Models) _directory.EnsureHosted(m);
            var tokenizerTask = tokenizers.GetAsync(spec.Base);
            run.BuildSlots();

            // Prefill: every model at once.
            var sw = Stopwatch.StartNew();
            var opened = await Task.WhenAll(run.Slots.Select(s => run.Call(s, () => s.Open(request.ResumeTokens), ct)));
            run.PrefillMs = sw.Elapsed.TotalMilliseconds;
            var tokenizer = await tokenizerTask;
            var promptIds = opened[0].PromptIds ?? [];
            run.ContextRoom = opened.Min(o => o.ContextRoom);
            await run.CheckVocabulariesAsync(opened, tokenizers);
            // EOS ids and the context window as the single-process decoder takes them (the tokenizer's EOS list;
            // room after the prompt in the tightest model): GenerationState applies both.
            var state = request.ResumeTokens.Length == 0
                ? new GenerationState(tokenizer, sampling, promptIds, contextRoom: run.ContextRoom)
                : GenerationState.Resume(tokenizer, sampling, new GenerationCheckpoint(sampling.Seed!.Value, request.ResumeTokens), promptIds, contextRoom: run.ContextRoom);
            run.State = state;
            await Publish(request, GenerationEventKind.Started, requestId, e => e);

            var results = opened;
            while (true)
            {
                if (ct.IsCancellationRequested)
                {
                    var delta = state.Finish(FinishReason.Cancelled);
                    yield return run.Final(FinishKind.Cancelled, delta, promptIds.Length);
                    break;
                }
                var stepStart = Stopwatch.GetTimestamp();
                var combined = run.Combine(results);
                var t1 = Stopwatch.GetTimestamp();
                var outcome = state.Advance(combined);
                run.SampleTicks += Stopwatch.GetTimestamp() - t1;
                run.CombineTicks += t1 - stepStart;
                var ev = new TokenEvent
                {
                    Step = state.Step - 1, TokenId = outcome.TokenId, Text = outcome.TextDelta, Seed = state.Seed,
                    Logits = request.ReturnLogits ? LogitsCodec.Encode(combined, LogitsPrecision.Float32) : null,
                    TopTokens = request.TopTokens > 0 ? run.TopTokens(results, combined, tokenizer) : null,
                };
                if (outcome.IsFinal)
                {
                    yield return run.Final(Map(outcome.Finish), outcome.TextDelta, promptIds.Length) with
                    {
                        Step = ev.Step, TokenId = ev.TokenId, Logits = ev.Logits, TopTokens = ev.TopTokens,
                    };
                    break;
                }
                // Every model at once, never one after another; started before the token is handed to the caller so
                // that the models compute while the token travels (the next step only needs this token).
                var fan = Stopwatch.GetTimestamp();
                int step = state.Step, token = outcome.TokenId;
                pending = Task.WhenAll(run.Slots.Select(s => run.Call(s, () => s.Step(step, token), ct)));
                var y = Stopwatch.GetTimestamp();
                handedOut = true;
                yield return ev;
                handedOut = false;
                run.StreamTicks += Stopwatch.GetTimestamp() - y;
                var next = await UnlessCancelled(pending, ct);
                pending = null;
                if (next is null) continue; // cancelled: the loop's top ends the generation with a Cancelled event
                results = next;
                run.FanOutTicks += Stopwatch.GetTimestamp() - fan;
                run.ModelMs += results.Max(r => r.ModelMs);
                run.ServerMs += results.Max(r => r.ServerMs);
                for (int i = 0; i < results.Length; i++) if (!run.Slots[i].Local) run.Bytes += results[i].Logits.Value.Length;
                run.StepTicks += Stopwatch.GetTimestamp() - stepStart;
                run.Steps++;
            }
        }
        finally
        {
            _running = false;
            pending?.ContinueWith(t => _ = t.Exception, TaskScheduler.Default); // abandoned step (caller stopped): observe it
            foreach (var s in run.Slots) _ = s.CloseQuietly();
            // Stopped by the caller or a Cancel (also when that interrupted a call): Cancelled; an unfinished run otherwise failed.
            var cancelled = handedOut || ct.IsCancellationRequested;
            if (cancelled && run.State is { IsFinished: false } unfinished) unfinished.Finish(FinishReason.Cancelled);
            var finish = run.State is { IsFinished: true } st ? Map(st.FinishReason) : cancelled ? FinishKind.Cancelled : FinishKind.Error;
            await Publish(request, GenerationEventKind.Finished, requestId,
                e => e with { Step = run.State?.Step ?? 0, Finish = finish, MeanStepMs = run.MeanStepMs });
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
        if (string.IsNullOrEmpty(r.Prompt) && r.Messages is not { Length: > 0 })
            throw new InvalidRequestException("prompt", "Give a non-empty prompt or at least one chat message.");
        var s = r.Sampling ?? new SamplingSpec();
        var options = new SamplingOptions
        {
            Temperature = s.Temperature, TopK = s.TopK, TopP = s.TopP, Seed = s.Seed, MaxNewTokens = s.MaxNewTokens,
            Stop = s.Stop ?? [], StopAtEos = s.StopAtEos,
        };
        try { Sampler.Validate(options); }
        catch (ArgumentException e) { throw new InvalidRequestException("sampling", e.Message); }
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

    /// <summary>One model (or pair) of the combination as the coordinator reaches it.</summary>
    private abstract class Slot
    {
        public string Label = "";
        /// <summary>Hosted on the coordinator's silo: its logits do not cross the wire.</summary>
        public bool Local;
        public abstract Task<StepResult> Open(int[] generated);
        public abstract Task<StepResult> Step(int step, int token);
        public abstract Task CloseQuietly();
        /// <summary>Switch replica after a drain refusal.</summary>
        public abstract void NextReplica();
    }

    // Slots hold the grain factory, not the grain: Polly runs retries off the activation's scheduler, where
    // Grain.GrainFactory may not be touched.
    private sealed class ModelSlot(IGrainFactory grains, string model, int replica, OpenSessionRequest open) : Slot
    {
        private IModelGrain Grain => grains.GetGrain<IModelGrain>($"{model}#{replica}");
        public override Task<StepResult> Open(int[] generated) => Grain.Open(open with { Generated = generated });
        public override Task<StepResult> Step(int step, int token) => Grain.Step(open.SessionId, step, token);
        public override async Task CloseQuietly() { try { await Grain.Close(open.SessionId); } catch { } }
        public override void NextReplica() => replica++;
    }

    private sealed class PairSlot(IGrainFactory grains, string key, int replica, OpenSessionRequest expert, OpenSessionRequest anti) : Slot
    {
        private IModelPairGrain Grain => grains.GetGrain<IModelPairGrain>($"{key}#{replica}");
        public override Task<StepResult> Open(int[] generated) => Grain.Open(expert with { Generated = generated }, anti with { Generated = generated });
        public override Task<StepResult> Step(int step, int token) => Grain.Step(expert.SessionId, step, token);
        public override async Task CloseQuietly() { try { await Grain.Close(expert.SessionId); } catch { } }
        public override void NextReplica() => replica++;
    }

    /// <summary>Per-request state: the slots and how they map to the combination, plus timing counters.</summary>
    private sealed class Run(GenerationGrain owner, GenerationRequest request, string requestId)
    {
        public readonly List<Slot> Slots = [];
        // For each pair i: (pair slot index) or (expert slot index, anti slot index).
        private readonly List<(int Pair, int Expert, int Anti, float Weight)> _pairs = [];
        public GenerationState? State;
        /// <summary>Tokens that still fit after the prompt in the tightest model's context (from the opens).</summary>
        public int ContextRoom = int.MaxValue;
        public double PrefillMs, ModelMs, ServerMs;
        public long StepTicks, FanOutTicks, CombineTicks, SampleTicks, StreamTicks, Bytes;
        public int Steps, Failovers;
        private readonly List<string> _layout = [];

        public double MeanStepMs => Steps == 0 ? 0 : Ms(StepTicks) / Steps;
        private static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

        public void BuildSlots()
        {
            var spec = request.Combination;
            var dir = owner._directory;
            var grains = owner.GrainFactory;
            string session = $"{requestId}@{Guid.NewGuid():N}";
            OpenSessionRequest Req(bool chat) => new()
            {
                SessionId = session, Prompt = request.Prompt, Messages = request.Messages, ApplyChatTemplate = chat,
                Precision = request.Precision, MaxNewTokens = request.Sampling.MaxNewTokens, TenantId = request.TenantId,
            };
            // The base: the local replica when this silo hosts it (its logits never cross the wire), and always fp32
            // there (a local call copies nothing, so fp16 would only cost accuracy).
            var baseLocal = owner._hosted.Find(spec.Base) is not null;
            var baseReq = Req(false) with { Precision = baseLocal ? LogitsPrecision.Float32 : request.Precision };
            Slots.Add(new ModelSlot(grains, spec.Base, ReplicaFor(spec.Base), baseReq) { Label = spec.Base, Local = baseLocal });
            _layout.Add($"{spec.Base}:{(baseLocal ? "local" : "remote")}");
            var baseInfoVocab = owner._hosted.Find(spec.Base)?.VocabSize ?? 0;
            foreach (var p in spec.Experts)
            {
                if (request.CoHostedPairs && dir.SilosHosting(p.Expert, p.AntiExpert).Count > 0)
                {
                    var key = $"{p.Expert}~{p.AntiExpert}";
                    var e = Req(request.ExpertChatTemplate) with { Weight = p.Weight, OutputVocab = baseInfoVocab };
                    _pairs.Add((Slots.Count, -1, -1, p.Weight));
                    Slots.Add(new PairSlot(grains, key, ReplicaFor(p.Expert, p.AntiExpert), e, Req(false)) { Label = key, Local = IsLocal(p.Expert, p.AntiExpert) });
                    _layout.Add($"{key}:pair{(IsLocal(p.Expert, p.AntiExpert) ? "(local)" : "")}");
                }
                else
                {
                    int ei = Slots.Count;
                    Slots.Add(new ModelSlot(grains, p.Expert, ReplicaFor(p.Expert), Req(request.ExpertChatTemplate)) { Label = p.Expert, Local = IsLocal(p.Expert) });
                    Slots.Add(new ModelSlot(grains, p.AntiExpert, ReplicaFor(p.AntiExpert), Req(false)) { Label = p.AntiExpert, Local = IsLocal(p.AntiExpert) });
                    _pairs.Add((-1, ei, ei + 1, p.Weight));
                    _layout.Add($"{p.Expert}:remote,{p.AntiExpert}:remote");
                }
            }
        }

        private bool IsLocal(params string[] models) => models.All(m => owner._hosted.Find(m) is not null);

        /// <summary>Replica index of a model (or pair): this silo's when it hosts it, else spread by request.</summary>
        private int ReplicaFor(params string[] models)
        {
            var silos = owner._directory.SilosHosting(models);
            if (silos.Count == 0) return 0;
            for (int i = 0; i < silos.Count; i++) if (silos[i].Equals(owner._directory.LocalSilo)) return i;
            return (int)((uint)StableHash(requestId + string.Join("~", models)) % (uint)silos.Count);
        }

        private static int StableHash(string s)
        {
            unchecked { int h = 17; foreach (var c in s) h = h * 31 + c; return h; }
        }

        /// <summary>A call with retries on transient faults; a lost session is re-opened (tokens so far prefilled).</summary>
        public async Task<StepResult> Call(Slot slot, Func<Task<StepResult>> call, CancellationToken ct)
        {
            try
            {
                return await owner._pipeline.ExecuteAsync(async t => await call().WaitAsync(t), ct);
            }
            catch (Exception e) when (State is not null && !ct.IsCancellationRequested &&
                                      (e is SessionNotFoundException || Resilience.IsTransient(e)))
            {
                Failovers++;
                if (e is ModelDrainingException) slot.NextReplica();
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
        public async Task CheckVocabulariesAsync(StepResult[] opened, TokenizerCache tokenizers)
        {
            var ids = opened.SelectMany(o => o.Vocabularies ?? []).ToDictionary(v => v.Model, StringComparer.Ordinal);
            var spec = request.Combination;
            if (!ids.TryGetValue(spec.Base, out var baseId)) return; // a silo of an older version: nothing to compare
            var checks = new List<Task>();
            foreach (var p in spec.Experts)
            {
                if (ids.TryGetValue(p.Expert, out var e)) checks.Add(tokenizers.EnsureSameVocabularyAsync(baseId, e, "expert"));
                if (ids.TryGetValue(p.AntiExpert, out var a)) checks.Add(tokenizers.EnsureSameVocabularyAsync(baseId, a, "anti-expert"));
            }
            await Task.WhenAll(checks);
        }

        public float[] Combine(StepResult[] results)
        {
            var baseLogits = LogitsCodec.ToFloats(results[0]).Span;
            int n = baseLogits.Length;
            var combined = new float[n];
            if (_pairs.Count == 0) { baseLogits.CopyTo(combined); return combined; }
            var diffs = new float[_pairs.Count * n];
            for (int i = 0; i < _pairs.Count; i++)
            {
                var (pair, ei, ai, w) = _pairs[i];
                var dest = diffs.AsSpan(i * n, n);
                if (pair >= 0)
                {
                    var d = LogitsCodec.ToFloats(results[pair]).Span;
                    if (d.Length < n) throw new InvalidOperationException($"Pair {Slots[pair].Label} sent {d.Length} logits; the base has {n}.");
                    d[..n].CopyTo(dest);
                }
                else ProxyCombiner.WeightedDifference(LogitsCodec.ToFloats(results[ei]).Span, LogitsCodec.ToFloats(results[ai]).Span, w, dest);
            }
            ProxyCombiner.CombineDifferences(baseLogits, diffs, request.Combination.Alpha, combined);
            return combined;
        }

        public Dictionary<string, TopToken[]> TopTokens(StepResult[] results, float[] combined, ITextTokenizer tok)
        {
            TopToken[] Top(ReadOnlySpan<float> l) => StepAnalysis.TopTokens(l, request.TopTokens)
                .Select(t => new TopToken(t.Id, tok.Decode([t.Id], skipSpecialTokens: false), t.Logit)).ToArray();
            var d = new Dictionary<string, TopToken[]> { ["combined"] = Top(combined) };
            for (int i = 0; i < Slots.Count; i++) d[Slots[i].Label] = Top(LogitsCodec.ToFloats(results[i]).Span);
            return d;
        }

        public TokenEvent Final(FinishKind finish, string delta, int promptTokens) => new()
        {
            Step = State?.Step ?? 0, TokenId = -1, Text = delta, Finish = finish, Seed = State?.Seed ?? 0,
            Usage = new UsageInfo(promptTokens, State?.Step ?? 0),
            Stats = new GenerationStats
            {
                Steps = Steps, PrefillMs = PrefillMs, StepMs = MeanStepMs,
                ModelMs = Steps == 0 ? 0 : ModelMs / Steps, FanOutMs = Steps == 0 ? 0 : Ms(FanOutTicks) / Steps,
                CombineMs = Steps == 0 ? 0 : Ms(CombineTicks) / Math.Max(1, Steps + 1), SampleMs = Ms(SampleTicks) / Math.Max(1, Steps + 1),
                BytesPerStep = Steps == 0 ? 0 : (double)Bytes / Steps, Failovers = Failovers,
                StreamMs = Steps == 0 ? 0 : Ms(StreamTicks) / Steps, ServerMs = Steps == 0 ? 0 : ServerMs / Steps,
                CoordinatorSilo = owner._directory.LocalSilo.ToString(), Layout = string.Join(" ", _layout),
            },
        };
    }
}
