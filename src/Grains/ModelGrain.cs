using System.Diagnostics;
using ProxyOrleans.Grains.Models;
using ProxyOrleans.Grains.Placement;
using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Grains;

/// <summary>
/// A model on a silo that hosts its weights. Reentrant: calls from many requests interleave and meet in the
/// silo's <see cref="ModelWorker"/>, which batches their steps. Sessions live in the worker, not in the activation.
/// </summary>
[Reentrant, ModelPlacementFilter]
public sealed class ModelGrain(HostedModels hosted) : Grain, IModelGrain
{
    private ModelWorker _worker = null!;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _worker = hosted.Get(GenerationKeys.ModelPrefix(this.GetPrimaryKeyString()));
        return Task.CompletedTask;
    }

    public Task<ModelInfo> GetInfo() => Task.FromResult(Info(_worker));

    internal static ModelInfo Info(ModelWorker w) =>
        new(w.Name, w.VocabSize, w.MaxSequenceLength, w.KvBytesPerToken, w.Tokenizer.ChatTemplate is not null, w.Tokenizer.EosTokenId);

    public async Task<StepResult> Open(OpenSessionRequest request)
    {
        if (hosted.Draining) throw hosted.RefuseForDrain($"Model '{_worker.Name}' on {RuntimeIdentity} is draining: open the session elsewhere.");
        using var span = Tracing.Source.StartActivity("model prefill")?.SetTag(Tracing.ModelTag, _worker.Name);
        var ids = _worker.Tokenize(request);
        var (logits, ms, promptRows) = await _worker.OpenAsync(request.SessionId, ids, request.Generated, request.MaxNewTokens, request.Precision,
            request.Generation, request.Attempt, request.ScorePrompt, request.CoordinatorSilo);
        return new StepResult
        {
            Step = request.Generated.Length, Logits = new(LogitsCodec.Encode(logits.Span, request.Precision)),
            PromptLogits = request.ScorePrompt ? new(LogitsCodec.Encode(promptRows.Span, request.Precision)) : null,
            Precision = request.Precision, PromptTokens = ids.Length, PromptIds = ids, ModelMs = ms,
            ContextRoom = _worker.MaxSequenceLength - ids.Length, Vocabularies = [_worker.Vocabulary],
        };
    }

    public async Task<StepResult> Step(string sessionId, int step, int token)
    {
        long start = Stopwatch.GetTimestamp();
        using var span = Tracing.Source.StartActivity("model step")?.SetTag(Tracing.ModelTag, _worker.Name).SetTag("proxyorleans.step", step);
        var (logits, ms) = await _worker.StepAsync(sessionId, step, token);
        var precision = _worker.PrecisionOf(sessionId);
        return new StepResult
        {
            Step = step, Logits = new(precision == LogitsPrecision.Float32 && LogitsCodec.TryGetWireBytes(logits, out var wire) ? wire : LogitsCodec.Encode(logits.Span, precision)),
            Precision = precision, ModelMs = ms,
            ServerMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds,
        };
    }

    public Task Close(string sessionId)
    {
        _worker.Close(sessionId);
        return Task.CompletedTask;
    }

    public Task<TokenizerFiles> GetTokenizerFiles() => Task.FromResult(ReadTokenizerFiles(_worker.Path));

    public Task<TokenizeResult> Tokenize(TokenizeRequest request)
    {
        var tokenizer = _worker.Tokenizer;
        int[] ids;
        if (request.Messages is { Length: > 0 } messages)
        {
            var template = tokenizer.ChatTemplate ?? throw new InvalidRequestException("messages",
                $"Model '{_worker.Name}' has no chat template: tokenize a 'prompt' instead, or give the model one " +
                $"(ProxyOrleans:Models:N:ChatTemplate = {string.Join(", ", ChatTemplates.Names)}).");
            string rendered;
            try { rendered = template.Render([.. messages.Select(m => new ChatMessage(m.Role, m.Content))], request.AddGenerationPrompt); }
            catch (ArgumentException e) { throw new InvalidRequestException("messages", e.Message); } // the template's raise_exception
            catch (InvalidDataException e) { throw new InvalidRequestException("messages", e.Message); } // a construct it cannot render
            // As an expert's chat prompt is prefilled: special tokens in the rendered text parsed (HF's apply_chat_template).
            ids = tokenizer.Encode(rendered, addBos: request.AddSpecialTokens, parseSpecialTokens: true);
        }
        else
        {
            var prompt = request.Prompt ?? throw new InvalidRequestException("prompt", "Give a 'prompt' or chat 'messages' to tokenize.");
            // As /v1/completions prefills a prompt: text that looks like a special token stays text.
            ids = tokenizer.Encode(prompt, addBos: request.AddSpecialTokens, parseSpecialTokens: false);
        }
        string[]? strings = request.ReturnTokenStrings ? [.. ids.Select(id => tokenizer.IdToToken(id) ?? "")] : null;
        return Task.FromResult(new TokenizeResult(ids, _worker.MaxSequenceLength, strings));
    }

    public Task<string> Detokenize(int[] tokens)
    {
        int vocab = _worker.Tokenizer.VocabSize;
        for (int i = 0; i < tokens.Length; i++)
            if (tokens[i] < 0 || tokens[i] >= vocab)
                throw new InvalidRequestException("tokens",
                    $"tokens[{i}] = {tokens[i]} is not a token of model '{_worker.Name}' (ids 0 to {vocab - 1}).");
        return Task.FromResult(_worker.Tokenizer.Decode(tokens, skipSpecialTokens: false));
    }

    internal static TokenizerFiles ReadTokenizerFiles(string dir)
    {
        string[] names = ["tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "config.json", "generation_config.json"];
        return new TokenizerFiles(names.Where(n => File.Exists(Path.Combine(dir, n)))
            .ToDictionary(n => n, n => File.ReadAllBytes(Path.Combine(dir, n))));
    }
}

/// <summary>
/// An expert and its anti-expert on one silo: both step locally (at once) and only the weighted difference
/// w·(expert − antiExpert) leaves the silo, computed by the same <see cref="ProxyCombiner.WeightedDifference"/>
/// the coordinator would use, so the result is bit-identical to shipping both vectors.
/// </summary>
[Reentrant, ModelPlacementFilter]
public sealed class ModelPairGrain(HostedModels hosted) : Grain, IModelPairGrain
{
    private ModelWorker _expert = null!, _anti = null!;

    /// <summary>What a pair session sends: w·(expert − anti) over the base's vocabulary, in this precision.</summary>
    private sealed record PairSession(float Weight, int OutputVocab, LogitsPrecision Precision)
    {
        /// <summary>The wire bytes, rewritten at every step: the coordinator reads a step's before it asks for the next.</summary>
        public byte[]? Wire;
    }

    // Per session, set at open. Lost with the activation: a step then finds no entry and the coordinator re-opens.
    private readonly Dictionary<string, PairSession> _sessions = new(StringComparer.Ordinal);

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var (models, _) = ModelPlacementDirector.ParseModelKey(this.GetPrimaryKeyString());
        if (models.Length != 2) throw new InvalidRequestException("key", $"Pair grain key '{this.GetPrimaryKeyString()}' must be 'expert~antiExpert'.");
        _expert = hosted.Get(models[0]);
        _anti = hosted.Get(models[1]);
        return Task.CompletedTask;
    }

    public async Task<StepResult> Open(OpenSessionRequest expertRequest, OpenSessionRequest antiRequest)
    {
        if (hosted.Draining) throw hosted.RefuseForDrain($"Models on {RuntimeIdentity} are draining: open the session elsewhere.");
        // Sessions the workers freed (idle, or never closed by a coordinator that died) leave the table here.
        foreach (var gone in _sessions.Keys.Where(id => !_expert.IsOpen(id)).ToList()) _sessions.Remove(gone);
        using var span = Tracing.Source.StartActivity("model prefill")?.SetTag(Tracing.ModelTag, $"{_expert.Name},{_anti.Name}");
        var eIds = _expert.Tokenize(expertRequest);
        var aIds = _anti.Tokenize(antiRequest);
        bool score = expertRequest.ScorePrompt;
        if (score && !eIds.AsSpan().SequenceEqual(aIds))
            throw new InvalidRequestException("prompt", $"Scoring the prompt needs the expert '{_expert.Name}' and the anti-expert '{_anti.Name}' to read it as the same tokens.");
        var e = _expert.OpenAsync(expertRequest.SessionId, eIds, expertRequest.Generated, expertRequest.MaxNewTokens,
            generation: expertRequest.Generation, attempt: expertRequest.Attempt, scorePrompt: score, coordinatorSilo: expertRequest.CoordinatorSilo);
        var a = _anti.OpenAsync(AntiSession(expertRequest.SessionId), aIds, antiRequest.Generated, antiRequest.MaxNewTokens,
            generation: antiRequest.Generation, attempt: antiRequest.Attempt, scorePrompt: score, coordinatorSilo: antiRequest.CoordinatorSilo);
        await Task.WhenAll(e, a);
        var session = new PairSession(expertRequest.Weight, expertRequest.OutputVocab, expertRequest.Precision);
        _sessions[expertRequest.SessionId] = session;
        var (eLogits, eMs, ePrompt) = e.Result;
        var (aLogits, aMs, aPrompt) = a.Result;
        return Difference(session, expertRequest.Generated.Length, (eLogits, eMs), (aLogits, aMs)) with
        {
            PromptLogits = score ? new(LogitsCodec.Encode(PromptDifferences(session, ePrompt, aPrompt, eIds.Length - 1).Span, session.Precision)) : null,
            // Both read the prompt as these ids (checked above): the coordinator compares them with the base's.
            PromptTokens = eIds.Length, PromptIds = score ? eIds : null,
            ContextRoom = Math.Min(_expert.MaxSequenceLength - eIds.Length, _anti.MaxSequenceLength - aIds.Length),
            Vocabularies = [_expert.Vocabulary, _anti.Vocabulary],
        };
    }

    public async Task<StepResult> Step(string sessionId, int step, int token)
    {
        long start = Stopwatch.GetTimestamp();
        if (!_sessions.TryGetValue(sessionId, out var session))
            throw new SessionNotFoundException($"Session '{sessionId}' is not open on pair '{this.GetPrimaryKeyString()}' here: re-open it.");
        using var span = Tracing.Source.StartActivity("model step")?.SetTag(Tracing.ModelTag, $"{_expert.Name},{_anti.Name}").SetTag("proxyorleans.step", step);
        var e = _expert.StepAsync(sessionId, step, token);
        var a = _anti.StepAsync(AntiSession(sessionId), step, token);
        await Task.WhenAll(e, a);
        return Difference(session, step, e.Result, a.Result) with { ServerMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds };
    }

    /// <summary>w·(expert − anti) for each of <paramref name="rows"/> prompt positions, row after row (prompt scoring).</summary>
    private ReadOnlyMemory<float> PromptDifferences(PairSession session, ReadOnlyMemory<float> expert, ReadOnlyMemory<float> anti, int rows)
    {
        int ve = _expert.VocabSize, va = _anti.VocabSize;
        int vocab = session.OutputVocab > 0 ? session.OutputVocab : Math.Min(ve, va);
        var d = new float[rows * vocab];
        for (int t = 0; t < rows; t++)
            ProxyCombiner.WeightedDifference(expert.Span.Slice(t * ve, ve), anti.Span.Slice(t * va, va), session.Weight, d.AsSpan(t * vocab, vocab));
        return d;
    }

    private static StepResult Difference(PairSession session, int step, (ReadOnlyMemory<float> Logits, double Ms) e, (ReadOnlyMemory<float> Logits, double Ms) a)
    {
        int vocab = session.OutputVocab > 0 ? session.OutputVocab : Math.Min(e.Logits.Length, a.Logits.Length);
        // Written straight into the wire bytes: no float[vocab] per session per step to copy from.
        var wire = session.Wire = LogitsCodec.EncodeFrom(vocab, session.Precision, (e.Logits, a.Logits, session.Weight),
            static (d, x) => ProxyCombiner.WeightedDifference(x.Item1.Span, x.Item2.Span, x.Weight, d), into: session.Wire);
        return new StepResult
        {
            Step = step, Logits = new(wire), Precision = session.Precision, ModelMs = Math.Max(e.Ms, a.Ms),
        };
    }

    public Task Close(string sessionId)
    {
        _sessions.Remove(sessionId);
        _expert.Close(sessionId);
        _anti.Close(AntiSession(sessionId));
        return Task.CompletedTask;
    }

    /// <summary>The anti-expert's session id: its own, so a pair of one model twice (expert = anti-expert) holds two sessions.</summary>
    private static string AntiSession(string pairSession) => pairSession + "~anti";
}
