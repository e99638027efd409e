using ProxyOrleans.Inference.Models;

namespace ProxyOrleans.Inference.Decoding;

/// <summary>One generated token as the decoder streams it.</summary>
public sealed record DecodedToken(int Step, int TokenId, string TextDelta, FinishReason Finish, StepAnalysis? Analysis = null)
{
    public bool IsFinal => Finish != FinishReason.None;
}

/// <summary>A finished generation.</summary>
public sealed record GenerationResult(string Text, int[] TokenIds, FinishReason FinishReason, int PromptTokens,
    int CompletionTokens, ulong Seed, IReadOnlyList<StepAnalysis> Analysis);

/// <summary>Extra decoding options of the single-process path.</summary>
public sealed record DecodeOptions
{
    /// <summary>Per step, the top tokens of every model and of the combination (0 = off).</summary>
    public int AnalysisTopK { get; init; }

    /// <summary>Continue an earlier generation: its tokens are prefilled and decoding resumes at their count.</summary>
    public GenerationCheckpoint? Resume { get; init; }
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
        foreach (var token in generation.Steps(cancellationToken))
            if (token.Analysis is not null) analysis.Add(token.Analysis);
        return generation.Result(analysis);
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
        step = new ProxyStep(combination.Alpha, [.. pairs.Select(p => p.Pair.Weight)]);
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
        if (State.IsFinished) yield break;
        try
        {
            Prefill();
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
        foreach (var (m, prompt, logits, _) in models)
        {
            int needed = prompt.Length + history.Length;
            var session = m.Model.CreateSession(Math.Min(m.Model.MaxSequenceLength, needed + remaining));
            sessions.Add(session);
            session.Append([.. prompt, .. history], logits);
        }
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
        return new DecodedToken(at, outcome.TokenId, outcome.TextDelta, outcome.Finish, analysis);
    }

    internal void Release()
    {
        foreach (var s in sessions) s.Dispose();
        sessions.Clear();
    }
}
