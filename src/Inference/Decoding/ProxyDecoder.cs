using ProxyOrleans.Inference.Models;

namespace ProxyOrleans.Inference.Decoding;

/// <summary>One generated token as the decoder streams it.</summary>
/// <param name="Logprobs">With <see cref="DecodeOptions.Logprobs"/>: the token's log-probability under the combination and the top alternatives.</param>
public sealed record DecodedToken(int Step, int TokenId, string TextDelta, FinishReason Finish, StepAnalysis? Analysis = null,
    TokenLogprobs? Logprobs = null)
{
    public bool IsFinal => Finish != FinishReason.None;
}

/// <summary>A finished generation.</summary>
/// <param name="Logprobs">Per generated token, with <see cref="DecodeOptions.Logprobs"/> (else empty).</param>
/// <param name="PromptLogprobs">Per prompt token (the first has none), with <see cref="DecodeOptions.PromptLogprobs"/> (else null).</param>
public sealed record GenerationResult(string Text, int[] TokenIds, FinishReason FinishReason, int PromptTokens,
    int CompletionTokens, ulong Seed, IReadOnlyList<StepAnalysis> Analysis,
    IReadOnlyList<TokenLogprobs>? Logprobs = null, TokenLogprobs?[]? PromptLogprobs = null);

/// <summary>Extra decoding options of the single-process path.</summary>
public sealed record DecodeOptions
{
    /// <summary>Per step, the top tokens of every model and of the combination (0 = off).</summary>
    public int AnalysisTopK { get; init; }

    /// <summary>Continue an earlier generation: its tokens are prefilled and decoding resumes at their count.</summary>
    public GenerationCheckpoint? Resume { get; init; }

    /// <summary>Per generated token, its log-probability and this many top alternatives (null: off; at most <see cref="TokenLogprobs.MaxTop"/>).</summary>
    public int? Logprobs { get; init; }

    /// <summary>
    /// Score the prompt (echo): per prompt token its log-probability and this many top alternatives (null: off). Every
    /// model then reads the prompt as sent (<see cref="ProxyPrompt.AsSent"/>), so that all score the same tokens.
    /// </summary>
    public int? PromptLogprobs { get; init; }
}

/// <summary>
/// Proxy-tuned decoding in one process: prefill every model, then per step combine
/// base + alpha * Σ w_i (expert_i − antiExpert_i), sample and stop with <see cref="ProxyStep"/> and append the
/// token to every model. The Orleans coordinator runs the same <see cref="ProxyStep"/>, with the models behind grains.
/// </summary>
public sealed class ProxyDecoder(Func<string, LoadedModel> resolve, Action<ProxyCombination>? checkCombination = null)
{
    /// <summary>A decoder over a catalog's models (loaded on first use, vocabularies checked per combination).</summary>
    public ProxyDecoder(ModelCatalog catalog) : this(catalog.Get, c => catalog.CheckCombination(c)) { }

    /// <summary>Prepares a generation (resolves and checks the models); nothing runs until its steps are enumerated.</summary>
    public ProxyGeneration Start(ProxyCombination combination, ProxyPrompt prompt, SamplingOptions options, DecodeOptions? decode = null)
    {
        ArgumentNullException.ThrowIfNull(combination);
        ArgumentNullException.ThrowIfNull(prompt);
        Sampler.Validate(options);
        if (!float.IsFinite(combination.Alpha))
            throw new ArgumentException($"Alpha must be a finite number; got {combination.Alpha}.", nameof(combination));
        foreach (var pair in combination.Experts)
            if (!float.IsFinite(pair.Weight))
                throw new ArgumentException($"The weight of pair {pair.Expert} − {pair.AntiExpert} must be finite; got {pair.Weight}.", nameof(combination));
        if (decode is { } d)
            foreach (var (top, name) in new[] { (d.Logprobs, nameof(d.Logprobs)), (d.PromptLogprobs, nameof(d.PromptLogprobs)) })
                if (top is < 0 or > TokenLogprobs.MaxTop)
                    throw new ArgumentException($"{name} must be 0..{TokenLogprobs.MaxTop} top alternatives; got {top}.", nameof(decode));
        if (decode?.PromptLogprobs is not null) prompt = prompt.AsSent();
        checkCombination?.Invoke(combination);
        var baseModel = resolve(combination.Base);
        var pairs = combination.Experts.Select(p => (Pair: p, Expert: resolve(p.Expert), Anti: resolve(p.AntiExpert))).ToArray();
        return new ProxyGeneration(combination, baseModel, pairs, prompt, options, decode ?? new DecodeOptions());
    }

    /// <summary>Runs a generation to the end.</summary>
    public GenerationResult Generate(ProxyCombination combination, ProxyPrompt prompt, SamplingOptions options,
        DecodeOptions? decode = null, CancellationToken cancellationToken = default)
    {
        var generation = Start(combination, prompt, options, decode);
        var analysis = new List<StepAnalysis>();
        var logprobs = new List<TokenLogprobs>();
        foreach (var token in generation.Steps(cancellationToken))
        {
            if (token.Analysis is not null) analysis.Add(token.Analysis);
            if (token.Logprobs is not null) logprobs.Add(token.Logprobs);
        }
        return generation.Result(analysis) with { Logprobs = logprobs, PromptLogprobs = generation.PromptLogprobs };
    }

    public GenerationResult Generate(ProxyCombination combination, string prompt, SamplingOptions options,
        CancellationToken cancellationToken = default) =>
        Generate(combination, ProxyPrompt.FromText(prompt), options, null, cancellationToken);

    /// <summary>
    /// Runs several generations of one combination in lockstep: per step, each model advances all still-running
    /// sessions with one <see cref="ILogitsModel.StepBatch"/> (several times the throughput of one stream on CPU).
    /// Each generation keeps its own <see cref="GenerationState"/> (its own seed, stops and text), so its
    /// result is what <see cref="Generate(ProxyCombination, ProxyPrompt, SamplingOptions, DecodeOptions?, CancellationToken)"/>
    /// gives for it alone, as far as StepBatch equals one Append per session. For evaluation runs.
    /// </summary>
    public GenerationResult[] GenerateBatch(ProxyCombination combination, IReadOnlyList<ProxyPrompt> prompts, SamplingOptions options,
        int maxBatch = 8, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        var results = new List<GenerationResult>(prompts.Count);
        for (int start = 0; start < prompts.Count; start += maxBatch)
            results.AddRange(RunLockstep([.. prompts.Skip(start).Take(maxBatch).Select(p => Start(combination, p, options))], cancellationToken));
        return [.. results];
    }

    private static IEnumerable<GenerationResult> RunLockstep(ProxyGeneration[] generations, CancellationToken cancellationToken)
    {
        try
        {
            foreach (var g in generations) g.Prefill();
            var running = generations.Where(g => !g.State.IsFinished).ToList();
            while (running.Count > 0)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    foreach (var g in running) g.State.Finish(FinishReason.Cancelled);
                    break;
                }
                var still = new List<ProxyGeneration>(running.Count);
                var next = new List<int>(running.Count);
                foreach (var g in running)
                {
                    var token = g.Decide();
                    if (!token.IsFinal) { still.Add(g); next.Add(token.TokenId); }
                }
                running = still;
                if (running.Count == 0) break;
                for (int m = 0; m < running[0].ModelCount; m++)
                {
                    var model = running[0].ModelAt(m);
                    float[] rows = new float[running.Count * model.VocabSize];
                    model.StepBatch([.. running.Select(g => g.SessionAt(m))], next.ToArray(), rows);
                    for (int r = 0; r < running.Count; r++)
                        rows.AsSpan(r * model.VocabSize, model.VocabSize).CopyTo(running[r].LogitsAt(m));
                }
            }
            return [.. generations.Select(g => g.Result())];
        }
        finally
        {
            foreach (var g in generations) g.Release();
        }
    }
}

/// <summary>One running single-process generation: enumerate <see cref="Steps"/> once.</summary>
public sealed class ProxyGeneration
{
    private readonly (LoadedModel Model, int[] Prompt, float[] Logits, string Role)[] models; // base, then expert/anti per pair
    private readonly ProxyStep step;
    private readonly PairLogits[] pairLogits; // views of each pair's logits buffers, refilled in place every step
    private readonly DecodeOptions decode;
    private readonly List<IModelSession> sessions = [];
    private bool started;

    internal ProxyGeneration(ProxyCombination combination, LoadedModel baseModel,
        (ExpertPair Pair, LoadedModel Expert, LoadedModel Anti)[] pairs, ProxyPrompt prompt, SamplingOptions options, DecodeOptions decode)
    {
        this.decode = decode;
        step = new ProxyStep(combination.Alpha, [.. pairs.Select(p => p.Pair.Weight)]) { TopLogprobs = decode.Logprobs };
        var roles = new List<(LoadedModel, int[], float[], string)> { (baseModel, prompt.BaseTokens(baseModel.Tokenizer), new float[baseModel.Model.VocabSize], "base") };
        foreach (var (_, expert, anti) in pairs)
        {
            roles.Add((expert, prompt.ExpertTokens(expert.Tokenizer), new float[expert.Model.VocabSize], "expert"));
            roles.Add((anti, prompt.PlainTokens(anti.Tokenizer), new float[anti.Model.VocabSize], "anti-expert"));
        }
        models = [.. roles];
        pairLogits = [.. pairs.Select((_, i) => PairLogits.Of(models[1 + 2 * i].Logits, models[2 + 2 * i].Logits))];

        // Room after the prompt in the tightest context; the prompt must leave some.
        foreach (var (m, p, _, _) in models)
            if (p.Length >= m.Model.MaxSequenceLength)
                throw new ContextLengthExceededException(
                    $"The prompt ({p.Length} tokens) leaves no room in model '{m.Name}''s context of {m.Model.MaxSequenceLength} tokens: shorten the prompt.");
        int room = models.Min(r => r.Model.Model.MaxSequenceLength - r.Prompt.Length);
        State = decode.Resume is { } resume
            ? GenerationState.Resume(baseModel.Tokenizer, options, resume, models[0].Prompt, contextRoom: room)
            : new GenerationState(baseModel.Tokenizer, options, models[0].Prompt, contextRoom: room);
    }

    public GenerationState State { get; }
    public ulong Seed => State.Seed;
    public int PromptTokens => models[0].Prompt.Length;
    public int CompletionTokens => State.Step;
    public FinishReason FinishReason => State.FinishReason;

    /// <summary>With <see cref="DecodeOptions.PromptLogprobs"/>, after the prefill: per prompt token, its log-probability (the first: null).</summary>
    public TokenLogprobs?[]? PromptLogprobs { get; private set; }

    /// <summary>Prompt ids per role, as prefilled: base, then per pair expert and anti-expert.</summary>
    public IReadOnlyList<int[]> PromptTokensByModel => [.. models.Select(m => m.Prompt)];

    public GenerationResult Result(IReadOnlyList<StepAnalysis>? analysis = null) =>
        new(State.Text, [.. State.GeneratedTokens], State.FinishReason, PromptTokens, CompletionTokens, Seed, analysis ?? []);

    /// <summary>
    /// Prefills all models, then yields one token per step until EOS, a stop sequence, max tokens, the
    /// context window, or cancellation (which ends with a final <see cref="FinishReason.Cancelled"/> token).
    /// </summary>
    public IEnumerable<DecodedToken> Steps(CancellationToken cancellationToken = default)
    {
        // max_tokens 0 (only the prompt scored) starts finished, but still prefills; a resumed finished run does nothing.
        bool scoreOnly = State.Options.MaxNewTokens == 0;
        if (State.IsFinished && !scoreOnly) yield break;
        try
        {
            Prefill();
            if (scoreOnly)
            {
                yield return new DecodedToken(0, -1, "", FinishReason.Length);
                yield break;
            }
            while (true)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    string rest = State.Finish(FinishReason.Cancelled);
                    yield return new DecodedToken(State.Step, -1, rest, FinishReason.Cancelled);
                    yield break;
                }
                var token = Decide();
                yield return token;
                if (token.IsFinal) yield break;
                int[] next = [token.TokenId];
                for (int m = 0; m < models.Length; m++) sessions[m].Append(next, models[m].Logits);
            }
        }
        finally
        {
            Release();
        }
    }

    internal int ModelCount => models.Length;
    internal ILogitsModel ModelAt(int m) => models[m].Model.Model;
    internal IModelSession SessionAt(int m) => sessions[m];
    internal float[] LogitsAt(int m) => models[m].Logits;

    /// <summary>Opens a session per model and prefills prompt + tokens generated so far (a resumed history).</summary>
    internal void Prefill()
    {
        if (started) throw new InvalidOperationException("A generation runs only once.");
        started = true;
        int[] history = [.. State.GeneratedTokens];
        int remaining = Math.Max(0, State.Options.MaxNewTokens - history.Length);
        bool scorePrompt = decode.PromptLogprobs is not null && history.Length == 0;
        var promptRows = new float[models.Length][];
        for (int i = 0; i < models.Length; i++)
        {
            var (m, prompt, logits, _) = models[i];
            int needed = prompt.Length + history.Length;
            var session = m.Model.CreateSession(Math.Min(m.Model.MaxSequenceLength, Math.Max(1, needed + remaining)));
            sessions.Add(session);
            if (!scorePrompt)
            {
                session.Append([.. prompt, .. history], logits);
                continue;
            }
            int vocab = m.Model.VocabSize;
            promptRows[i] = new float[prompt.Length * vocab];
            session.AppendScoringEveryPosition(prompt, promptRows[i]);
            promptRows[i].AsSpan((prompt.Length - 1) * vocab, vocab).CopyTo(logits);
        }
        if (scorePrompt) PromptLogprobs = ScorePrompt(promptRows, decode.PromptLogprobs!.Value);
    }

    /// <summary>The prompt's log-probabilities from every model's logits at every prompt position, combined as a step combines.</summary>
    private TokenLogprobs?[] ScorePrompt(float[][] promptRows, int top)
    {
        var ids = models[0].Prompt;
        foreach (var (m, prompt, _, role) in models)
            if (!prompt.AsSpan().SequenceEqual(ids))
                throw new ArgumentException($"Scoring the prompt needs every model to read it as the same tokens, but the {role} '{m.Name}' " +
                                            "tokenizes it differently from the base: use models that share the base's tokenizer.");
        var scorer = new ProxyStep(step.Alpha, step.Weights);
        int baseVocab = models[0].Model.Model.VocabSize;
        var pairsAt = new PairLogits[pairLogits.Length];
        return TokenLogprobs.ScorePrompt(ids, t =>
        {
            for (int i = 0; i < pairsAt.Length; i++)
            {
                int e = 1 + 2 * i, a = e + 1, ve = models[e].Model.Model.VocabSize, va = models[a].Model.Model.VocabSize;
                pairsAt[i] = PairLogits.Of(promptRows[e].AsMemory(t * ve, ve), promptRows[a].AsMemory(t * va, va));
            }
            return scorer.Combine(promptRows[0].AsSpan(t * baseVocab, baseVocab), pairsAt);
        }, models[0].Model.Tokenizer.VocabSize, top);
    }

    /// <summary>Combines the current logits and advances the state by one token (<see cref="ProxyStep"/>).</summary>
    internal DecodedToken Decide()
    {
        int at = State.Step;
        var outcome = step.Advance(State, models[0].Logits, pairLogits);
        StepAnalysis? analysis = decode.AnalysisTopK > 0
            ? new StepAnalysis(at, outcome.TokenId,
                [.. models.Select(m => new ModelTopTokens(m.Model.Name, m.Role, StepAnalysis.TopTokens(m.Logits, decode.AnalysisTopK)))],
                StepAnalysis.TopTokens(step.Combined, decode.AnalysisTopK))
            : null;
        return new DecodedToken(at, outcome.TokenId, outcome.TextDelta, outcome.Finish, analysis, step.LastLogprobs);
    }

    internal void Release()
    {
        foreach (var s in sessions) s.Dispose();
        sessions.Clear();
    }
}
