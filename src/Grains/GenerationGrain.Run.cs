using System.Diagnostics;
using Microsoft.Extensions.Logging;
using ProxyOrleans.Grains.Models;
using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Grains;

// The coordinator's run of one request: opening a session per model, each step's decision and fan-out, the replica
// each slot goes to and the failover of a lost session. The grain's lifecycle (lease, cancel, the step loop) is in
// GenerationGrain.cs.
public sealed partial class GenerationGrain
{
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
