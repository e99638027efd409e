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
/// base + alpha * Σ w_i (expert_i − antiExpert_i) with <see cref="ProxyCombiner"/>, choose the token with
/// <see cref="GenerationState"/> and append it to every model. The Orleans coordinator runs the same
/// combiner and state, with the models behind grains.
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
}

/// <summary>One running single-process generation: enumerate <see cref="Steps"/> once.</summary>
public sealed class ProxyGeneration
{
    private readonly ProxyCombination combination;
    private readonly LoadedModel baseModel;
    private readonly (ExpertPair Pair, LoadedModel Expert, LoadedModel Anti)[] pairs;
    private readonly int[] basePrompt;
    private readonly int[][] expertPrompts, antiPrompts;
    private readonly DecodeOptions decode;
    private bool started;

    internal ProxyGeneration(ProxyCombination combination, LoadedModel baseModel,
        (ExpertPair, LoadedModel, LoadedModel)[] pairs, ProxyPrompt prompt, SamplingOptions options, DecodeOptions decode)
    {
        this.combination = combination;
        this.baseModel = baseModel;
        this.pairs = pairs;
        this.decode = decode;
        basePrompt = prompt.PlainTokens(baseModel.Tokenizer);
        expertPrompts = [.. this.pairs.Select(p => prompt.ExpertTokens(p.Expert.Tokenizer))];
        antiPrompts = [.. this.pairs.Select(p => prompt.PlainTokens(p.Anti.Tokenizer))];
        // Room after the prompt in the tightest context; the prompt must leave some.
        var roles = new List<(LoadedModel Model, int[] Prompt)> { (baseModel, basePrompt) };
        for (int i = 0; i < pairs.Length; i++) { roles.Add((pairs[i].Item2, expertPrompts[i])); roles.Add((pairs[i].Item3, antiPrompts[i])); }
        foreach (var (m, p) in roles)
            if (p.Length >= m.Model.MaxSequenceLength)
                throw new ContextLengthExceededException(
                    $"The prompt ({p.Length} tokens) leaves no room in model '{m.Name}''s context of {m.Model.MaxSequenceLength} tokens: shorten the prompt.");
        int room = roles.Min(r => r.Model.Model.MaxSequenceLength - r.Prompt.Length);
        State = decode.Resume is { } resume
            ? GenerationState.Resume(baseModel.Tokenizer, options, resume, basePrompt, contextRoom: room)
            : new GenerationState(baseModel.Tokenizer, options, basePrompt, contextRoom: room);
    }

    public GenerationState State { get; }
    public ulong Seed => State.Seed;
    public int PromptTokens => basePrompt.Length;
    public int CompletionTokens => State.Step;
    public FinishReason FinishReason => State.FinishReason;

    /// <summary>Prompt ids per role, as prefilled (base, then per pair expert and anti-expert).</summary>
    public IReadOnlyList<int> BasePromptTokens => basePrompt;
    public IReadOnlyList<int[]> ExpertPromptTokens => expertPrompts;
    public IReadOnlyList<int[]> AntiExpertPromptTokens => antiPrompts;

    public GenerationResult Result(IReadOnlyList<StepAnalysis>? analysis = null) =>
        new(State.Text, [.. State.GeneratedTokens], State.FinishReason, PromptTokens, CompletionTokens, Seed, analysis ?? []);

    /// <summary>
    /// Prefills all models, then yields one token per step until EOS, a stop sequence, max tokens, the
    /// context window, or cancellation (which ends with a final <see cref="FinishReason.Cancelled"/> token).
    /// </summary>
    public IEnumerable<DecodedToken> Steps(CancellationToken cancellationToken = default)
    {
        if (started) throw new InvalidOperationException("A generation's steps can be enumerated only once.");
        started = true;
        if (State.IsFinished) yield break;

        int vocab = baseModel.Model.VocabSize;
        int n = pairs.Length;
        var history = State.GeneratedTokens.ToArray();
        var models = new List<(LoadedModel Model, int[] Prompt, float[] Logits, string Role)> { (baseModel, basePrompt, new float[vocab], "base") };
        for (int i = 0; i < n; i++)
        {
            models.Add((pairs[i].Expert, expertPrompts[i], new float[pairs[i].Expert.Model.VocabSize], "expert"));
            models.Add((pairs[i].Anti, antiPrompts[i], new float[pairs[i].Anti.Model.VocabSize], "anti-expert"));
        }

        var sessions = new List<IModelSession>(models.Count);
        try
        {
            int remaining = Math.Max(0, State.Options.MaxNewTokens - history.Length);
            foreach (var (m, prompt, logits, _) in models)
            {
                int needed = prompt.Length + history.Length;
                var session = m.Model.CreateSession(Math.Min(m.Model.MaxSequenceLength, needed + remaining));
                sessions.Add(session);
                session.Append([.. prompt, .. history], logits);
            }

            float[] combined = new float[vocab];
            float[] differences = new float[n * vocab];
            while (true)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    string rest = State.Finish(FinishReason.Cancelled);
                    yield return new DecodedToken(State.Step, -1, rest, FinishReason.Cancelled);
                    yield break;
                }

                for (int i = 0; i < n; i++)
                    ProxyCombiner.WeightedDifference(models[1 + 2 * i].Logits, models[2 + 2 * i].Logits,
                        pairs[i].Pair.Weight, differences.AsSpan(i * vocab, vocab));
                ProxyCombiner.CombineDifferences(models[0].Logits, differences, combination.Alpha, combined);

                int step = State.Step;
                var outcome = State.Advance(combined);
                StepAnalysis? analysis = decode.AnalysisTopK > 0
                    ? new StepAnalysis(step, outcome.TokenId,
                        [.. models.Select(m => new ModelTopTokens(m.Model.Name, m.Role, StepAnalysis.TopTokens(m.Logits, decode.AnalysisTopK)))],
                        StepAnalysis.TopTokens(combined, decode.AnalysisTopK))
                    : null;

                yield return new DecodedToken(step, outcome.TokenId, outcome.TextDelta, outcome.Finish, analysis);
                if (outcome.IsFinal) yield break;

                int[] token = [outcome.TokenId];
                for (int m = 0; m < models.Count; m++) sessions[m].Append(token, models[m].Logits);
            }
        }
        finally
        {
            foreach (var s in sessions) s.Dispose();
        }
    }
}
