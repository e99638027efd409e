using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Grains.Models;

/// <summary>
/// One loaded model on this silo and all its sessions. A single loop runs the model: prefills one at a time,
/// and the steps of all sessions that are waiting (gathered for a short window) as one StepBatch, so tenants
/// share the model instead of queueing behind each other. Results are fp32 logits as floats; the grain that sends
/// them encodes them once, for the wire, in the session's precision (given at open).
/// </summary>
// This file: the sessions, their KV reservations and lifetimes; the loop and its batching: ModelWorker.Batching.cs.
public sealed partial class ModelWorker : IDisposable
{
    private readonly ILogitsModel _model;
    private readonly ILogger _log;
    private readonly long _budgetBytes;
    private readonly TimeSpan _batchWindow;
    private readonly int _maxBatch;
    private readonly TimeSpan _idleTimeout;
    private readonly ConcurrentDictionary<string, Session> _sessions = new(StringComparer.Ordinal);
    private readonly Channel<Work> _queue = Channel.CreateUnbounded<Work>(new() { SingleReader = true });
    private readonly Task _loop;
    private readonly Timer _idleSweep;
    private long _reservedBytes;

    public string Name { get; }
    public string Path { get; }
    public ITextTokenizer Tokenizer { get; }
    public int VocabSize => _model.VocabSize;
    private VocabularyId? _vocabulary;
    /// <summary>Fingerprint of the tokenizer (what the vocabulary check compares) and the logits count, reported at every open (computed once).</summary>
    public VocabularyId Vocabulary => _vocabulary ??= new(Name, VocabularyCheck.Fingerprint(Tokenizer), VocabSize);
    public int MaxSequenceLength => _model.MaxSequenceLength;
    public long KvBytesPerToken => _model.KvBytesPerToken;
    public int ActiveSessions => _sessions.Count;
    public long ReservedBytes => Interlocked.Read(ref _reservedBytes);
    public long BudgetBytes => _budgetBytes;

    // Counters for /metrics and the benchmark.
    public long Steps;
    public long Batches;
    /// <summary>Decode batches that ran after waiting the whole batch window for a session of the previous batch.</summary>
    public long WindowTimeouts;
    public long Prefills;
    public double ComputeMs;
    /// <summary>The part of <see cref="ComputeMs"/> this host's CPU computed: all of it, except on a simulated accelerator.</summary>
    public double HostComputeMs => _model is AcceleratorLatencyModel simulated ? simulated.HostComputeMs : ComputeMs;

    public ModelWorker(string name, string path, LoadedModel loaded, long budgetBytes,
        TimeSpan batchWindow, int maxBatch, TimeSpan idleTimeout, ILogger log)
    {
        Name = name; Path = path; _model = loaded.Model; Tokenizer = loaded.Tokenizer; _log = log;
        _budgetBytes = budgetBytes; _batchWindow = batchWindow; _maxBatch = Math.Max(1, maxBatch); _idleTimeout = idleTimeout;
        _loop = Task.Factory.StartNew(RunAsync, TaskCreationOptions.LongRunning).Unwrap();
        var sweep = TimeSpan.FromSeconds(Math.Clamp(idleTimeout.TotalSeconds / 4, 0.5, 10));
        _idleSweep = new Timer(_ => SweepIdle(), null, sweep, sweep);
    }

    /// <summary>
    /// The prompt as this model sees it: the plain text inside the answer cue (base, anti-expert), or the messages
    /// through its chat template plus the response prefix (expert, <see cref="OpenSessionRequest.ApplyChatTemplate"/>).
    /// </summary>
    /// <remarks>Through <see cref="ProxyPrompt"/>, as the single-process decoder does, so both paths prefill the same ids.</remarks>
    public int[] Tokenize(OpenSessionRequest request)
    {
        if (CombinationSpec.AnswerCueProblem(request.AnswerCue) is { } problem) throw new InvalidRequestException("answer_cue", problem);
        var prompt = request.ToProxyPrompt();
        try { return request.ApplyChatTemplate ? prompt.ExpertTokens(Tokenizer) : prompt.PlainTokens(Tokenizer); }
        catch (ArgumentException e) { throw new InvalidRequestException("prompt", e.Message); }
    }

    /// <summary>
    /// Creates (or replaces) a session, prefills prompt + generated tokens, returns fp32 logits for step
    /// <c>generated.Length</c>. Reserves KV memory for the whole request up front.
    /// </summary>
    /// <param name="precision">How the session's logits travel (<see cref="PrecisionOf"/>); the worker itself always returns fp32.</param>
    /// <param name="generation">The request all attempts of a generation share (null: none); with <paramref name="attempt"/>,
    /// see <see cref="OpenSessionRequest.Generation"/>.</param>
    /// <param name="scorePrompt">Also return PromptRows: the logits after each prompt token but the last (echo); only
    /// with no generated tokens.</param>
    /// <param name="coordinatorSilo">The opening coordinator's silo (<see cref="CloseSessionsOfCoordinator"/>); null: unknown.</param>
    public async Task<(ReadOnlyMemory<float> Logits, double ModelMs, ReadOnlyMemory<float> PromptRows)> OpenAsync(string sessionId, int[] promptIds,
        int[] generated, int maxNewTokens, LogitsPrecision precision = LogitsPrecision.Float32, string? generation = null, int attempt = 0,
        bool scorePrompt = false, string? coordinatorSilo = null)
    {
        if (scorePrompt && generated.Length > 0)
            throw new InvalidRequestException("generated", "A prompt is scored when its session first opens, before any token is generated.");
        if (promptIds.Length == 0) throw new InvalidRequestException("prompt", "The prompt tokenized to no tokens.");
        Close(sessionId);
        if (generation is not null) CloseEarlierAttempts(generation, attempt);
        int used = promptIds.Length + generated.Length;
        // Same capacity as the single-process decoder: prompt + history + the tokens still to come.
        int capacity = maxNewTokens > 0 ? Math.Min(_model.MaxSequenceLength, promptIds.Length + Math.Max(maxNewTokens, generated.Length)) : _model.MaxSequenceLength;
        if (used >= _model.MaxSequenceLength)
            // InvalidRequestException, not the Inference library's ContextLengthExceededException: only types with an
            // Orleans codec can travel back to the caller (that one arrived as CodecNotFoundException, a 500 at the gateway).
            throw new InvalidRequestException("prompt",
                $"Prompt and generated tokens ({used}) exceed model '{Name}''s context of {_model.MaxSequenceLength} tokens: shorten the prompt.");
        long need = capacity * _model.KvBytesPerToken;
        long after = Interlocked.Add(ref _reservedBytes, need);
        if (after > _budgetBytes)
        {
            Interlocked.Add(ref _reservedBytes, -need);
            throw new CapacityExceededException(
                $"Model '{Name}' KV-cache budget is full: this request needs {need / 1048576.0:F1} MB ({capacity} tokens), " +
                $"{(after - need) / 1048576.0:F1} of {_budgetBytes / 1048576.0:F1} MB are held by {_sessions.Count} sessions. " +
                "Retry later, lower max_tokens, add a replica, or raise ProxyOrleans:KvBudgetMB.");
        }
        var session = new Session(sessionId, capacity, need) { Step = generated.Length, Precision = precision, Generation = generation, Attempt = attempt, CoordinatorSilo = coordinatorSilo };
        try
        {
            session.Inner = _model.CreateSession(capacity);
            var tokens = promptIds.Concat(generated).ToArray();
            var work = new Work(session, tokens, prefill: true) { EveryPosition = scorePrompt };
            if (!_sessions.TryAdd(sessionId, session)) throw new InvalidOperationException($"Session {sessionId} opened twice at once.");
            await _queue.Writer.WriteAsync(work);
            var rows = await work.Result.Task;
            int v = _model.VocabSize;
            // The last row copied out: the session keeps it for a retried step, and must not hold every prompt row with it.
            var logits = scorePrompt ? rows[^v..].ToArray() : rows;
            session.LastLogits = logits;
            session.Touch();
            return (logits, work.ModelMs, scorePrompt ? rows[..^v] : ReadOnlyMemory<float>.Empty);
        }
        catch
        {
            Close(sessionId);
            session.Release(this);
            throw;
        }
    }

    /// <summary>
    /// A later attempt of the same generation is opening: sessions of earlier attempts belong to a coordinator that was
    /// given up (its silo died) and would hold their KV until the idle timeout. A late open of an earlier attempt
    /// (its coordinator still alive after all) is refused, so that it cannot take the memory back.
    /// </summary>
    private void CloseEarlierAttempts(string generation, int attempt)
    {
        foreach (var (id, s) in _sessions)
        {
            if (!string.Equals(s.Generation, generation, StringComparison.Ordinal)) continue;
            if (s.Attempt < attempt)
            {
                _log.LogInformation("Model {Model}: freeing session {Session} of attempt {Old}; attempt {New} of the generation opened", Name, id, s.Attempt, attempt);
                Close(id);
            }
            else if (s.Attempt > attempt)
                throw new SessionNotFoundException(
                    $"Attempt {attempt} of generation '{generation}' was superseded by attempt {s.Attempt} on model '{Name}': this coordinator was given up.");
        }
    }

    /// <summary>Appends the token sampled at step−1 and returns the logits for <paramref name="step"/>; idempotent per step.</summary>
    public Task<(ReadOnlyMemory<float> Logits, double ModelMs)> StepAsync(string sessionId, int step, int token)
    {
        if (!_sessions.TryGetValue(sessionId, out var session))
            throw new SessionNotFoundException($"Session '{sessionId}' is not open on model '{Name}' here (silo restarted or idle timeout): re-open it.");
        if ((uint)token >= (uint)_model.VocabSize)
            // Checked here: the one-row decode path reads the embedding row unchecked.
            throw new InvalidRequestException("token", $"Token id {token} is outside model '{Name}''s vocabulary (0..{_model.VocabSize - 1}).");
        session.Touch();
        lock (session)
        {
            if (step == session.Step && session.LastLogits is { } last) return Task.FromResult((last, 0.0)); // retried call
            if (step == session.Step + 1)
            {
                if (session.Pending is { } pending) return pending; // retried while still running
                var work = new Work(session, [token], prefill: false);
                var task = RunStep(session, step, work);
                session.Pending = task;
                if (!_queue.Writer.TryWrite(work)) throw new ObjectDisposedException(Name);
                return task;
            }
            throw new InvalidRequestException("step",
                $"Step {step} of session '{sessionId}' is out of order: model '{Name}' is at step {session.Step}.");
        }
    }

    private async Task<(ReadOnlyMemory<float>, double)> RunStep(Session session, int step, Work work)
    {
        ReadOnlyMemory<float> logits;
        try { logits = await work.Result.Task; }
        catch (Exception e) when (e is not SessionNotFoundException)
        {
            // The forward failed for this session: its cache may be half written, so it is closed (KV freed) rather
            // than left with a faulted pending step that every retry would return. A retry then finds no session.
            lock (session) session.Pending = null;
            // This session object only: the id may already name a re-opened session.
            if (((ICollection<KeyValuePair<string, Session>>)_sessions).Remove(new(session.Id, session)))
            {
                session.Closed = true;
                _queue.Writer.TryWrite(new Work(session, [], prefill: false) { Free = true });
            }
            _log.LogWarning(e, "Model {Model}: step {Step} of session {Session} failed; the session was closed", Name, step, session.Id);
            throw new ModelFaultException(
                $"Model '{Name}' failed on step {step} of session '{session.Id}' ({e.GetType().Name}: {e.Message}). " +
                "The session was closed and its memory freed; other sessions are unaffected.");
        }
        lock (session)
        {
            session.Step = step;
            session.LastLogits = logits;
            session.Pending = null;
        }
        return (logits, work.ModelMs);
    }

    /// <summary>Transfer precision of a session (set at open).</summary>
    public LogitsPrecision PrecisionOf(string sessionId) =>
        _sessions.TryGetValue(sessionId, out var s) ? s.Precision
            : throw new SessionNotFoundException($"Session '{sessionId}' is not open on model '{Name}' here: re-open it.");

    /// <summary>Whether the session is open here (not closed, not freed as idle).</summary>
    public bool IsOpen(string sessionId) => _sessions.ContainsKey(sessionId);

    /// <summary>
    /// Frees every session opened by a coordinator on <paramref name="silo"/>, which the cluster declared dead: nothing will
    /// step or close them, and the idle timeout would hold their KV for minutes. Returns how many were freed.
    /// </summary>
    public int CloseSessionsOfCoordinator(string silo)
    {
        int freed = 0;
        foreach (var (id, s) in _sessions)
        {
            if (!string.Equals(s.CoordinatorSilo, silo, StringComparison.Ordinal)) continue;
            Close(id);
            freed++;
        }
        if (freed > 0) _log.LogInformation("Model {Model}: freed {Count} sessions whose coordinator's silo {Silo} died", Name, freed, silo);
        return freed;
    }

    public void Close(string sessionId)
    {
        if (_sessions.TryRemove(sessionId, out var session)) session.Closed = true;
        // The KV memory is released by the loop (it may be using the session right now).
        if (session is not null) _queue.Writer.TryWrite(new Work(session, [], prefill: false) { Free = true });
    }

    /// <summary>
    /// Waits until no session is in use (drain) or the timeout passes. Sessions untouched for a few seconds are
    /// orphans (their coordinator died) and do not hold the drain up; the idle sweep frees them.
    /// </summary>
    public async Task DrainAsync(TimeSpan timeout, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        bool Busy() => _sessions.Values.Any(s => s.Pending is not null || Environment.TickCount64 - s.LastUsed < 3000);
        while (Busy() && sw.Elapsed < timeout && !ct.IsCancellationRequested) await Task.Delay(100, CancellationToken.None);
    }

    private void SweepIdle()
    {
        var now = Environment.TickCount64;
        foreach (var (id, s) in _sessions)
            if (s.Pending is null && now - s.LastUsed > _idleTimeout.TotalMilliseconds)
            {
                _log.LogInformation("Model {Model}: freeing idle session {Session}", Name, id);
                Close(id);
            }
    }

    public void Dispose()
    {
        _idleSweep.Dispose();
        _queue.Writer.TryComplete();
        try { _loop.Wait(TimeSpan.FromSeconds(5)); } catch { }
        foreach (var s in _sessions.Values) s.Inner?.Dispose();
        _sessions.Clear();
        _model.Dispose();
    }

    private sealed class Session(string id, int capacity, long reserved)
    {
        public string Id { get; } = id;
        public int Capacity { get; } = capacity;
        public IModelSession? Inner;
        public int Step;                 // step whose logits LastLogits holds
        public ReadOnlyMemory<float>? LastLogits;
        /// <summary>Where the worker writes this session's logits at every step (allocated at the first).</summary>
        public FloatBytes? Row;
        public Task<(ReadOnlyMemory<float>, double)>? Pending;
        public long LastUsed = Environment.TickCount64;
        public LogitsPrecision Precision;
        public string? Generation;
        public int Attempt;
        public string? CoordinatorSilo;
        public volatile bool Closed;
        private long _reserved = reserved;
        public void Touch() => LastUsed = Environment.TickCount64;

        public void Release(ModelWorker owner)
        {
            var r = Interlocked.Exchange(ref _reserved, 0);
            if (r != 0) Interlocked.Add(ref owner._reservedBytes, -r);
            Inner?.Dispose();
            Inner = null;
        }
    }
}
