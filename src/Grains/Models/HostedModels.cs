using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ProxyOrleans.Grains.Hosting;
using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Grains.Models;

/// <summary>Loads a model directory (HF layout) into a model and its tokenizer.</summary>
public interface IModelLoader
{
    /// <param name="chatTemplate">The model's chat template setting (<see cref="HostedModelOptions.ChatTemplate"/>; null: its own).</param>
    LoadedModel Load(string name, string path, string? chatTemplate = null);

    /// <summary>Only the tokenizer of a model directory (coordinators on silos without the weights); its EosTokenIds hold config.json's ids too.</summary>
    ITextTokenizer LoadTokenizer(string path);
}

/// <summary>
/// The models this silo hosts, each loaded once at startup (before the silo joins, so a silo never advertises a
/// model it cannot serve). On shutdown it drains: waits for running sessions to finish.
/// </summary>
public sealed class HostedModels : IHostedLifecycleService, IDisposable
{
    private readonly Dictionary<string, ModelWorker> _workers = new(StringComparer.Ordinal);
    private readonly ProxyOrleansOptions _options;
    private readonly IModelLoader _loader;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _log;

    public HostedModels(IOptions<ProxyOrleansOptions> options, IModelLoader loader, ILoggerFactory loggers)
    {
        _options = options.Value; _loader = loader; _loggers = loggers; _log = loggers.CreateLogger<HostedModels>();
        // Loaded eagerly in the constructor: the silo resolves this service while it builds, before it starts.
        foreach (var m in _options.Models) Load(m);
        // Each model's loop holds a pool thread for a whole forward (milliseconds). With the pool's default minimum
        // (one thread per core) a silo hosting several models starved its own messaging and grain turns until the
        // pool slowly grew (measured: ~4 ms queueing per step with three 24M models in one silo, `bench cluster`).
        ThreadPool.GetMinThreads(out int workers, out int io);
        int wanted = Environment.ProcessorCount + _workers.Count;
        if (workers < wanted) ThreadPool.SetMinThreads(wanted, io);
    }

    public IReadOnlyCollection<string> Names => _workers.Keys;
    public IEnumerable<ModelWorker> Workers => _workers.Values;
    /// <summary>True while the silo is shutting down: new sessions are refused so that callers open them elsewhere.</summary>
    public bool Draining { get; private set; }

    /// <summary>Set by the silo's <see cref="Placement.DrainWatcher"/>: tells the cluster this silo drains.</summary>
    public Func<Task>? AnnounceDrain { get; set; }

    /// <summary>Sessions (and coordinators) refused because of the drain, for metrics and tests.</summary>
    public long DrainRefusals => Interlocked.Read(ref _drainRefusals);
    private long _drainRefusals;

    /// <summary>The exception that refuses a new coordinator during the drain (counted).</summary>
    public CoordinatorDrainingException RefuseCoordinator(string message)
    {
        Interlocked.Increment(ref _drainRefusals);
        return new CoordinatorDrainingException(message);
    }

    /// <summary>The exception that refuses new work during the drain (counted).</summary>
    public ModelDrainingException RefuseForDrain(string message)
    {
        Interlocked.Increment(ref _drainRefusals);
        return new ModelDrainingException(message);
    }

    public ModelWorker? Find(string name) => _workers.GetValueOrDefault(name);

    public ModelWorker Get(string name) => Find(name) ?? throw new ModelNotHostedException(name, _workers.Keys);

    private void Load(HostedModelOptions m)
    {
        if (string.IsNullOrWhiteSpace(m.Name)) throw new InvalidOperationException("ProxyOrleans:Models entry without a Name.");
        if (_workers.ContainsKey(m.Name)) throw new InvalidOperationException($"Model '{m.Name}' is listed twice in ProxyOrleans:Models.");
        if (!Directory.Exists(m.Path))
            throw new DirectoryNotFoundException(
                $"Model '{m.Name}': directory '{m.Path}' does not exist. Set ProxyOrleans:Models:N:Path to an HF-layout model directory.");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        LoadedModel loaded;
        try { loaded = _loader.Load(m.Name, m.Path, m.ChatTemplate); }
        catch (ArgumentException e) when (e.ParamName == "name") // ChatTemplates.ByName: an unknown family
        {
            throw new InvalidOperationException($"Model '{m.Name}': ProxyOrleans:Models:N:ChatTemplate: {e.Message} Or \"auto\" (the model's own) or \"none\".", e);
        }
        if ((m.LatencyModel ?? _options.LatencyModel) is { Length: > 0 } latency)
        {
            AcceleratorLatencyProfile profile;
            try { profile = AcceleratorLatencyProfile.Parse(latency); }
            catch (FormatException e) { throw new InvalidOperationException($"Model '{m.Name}': {e.Message} (ProxyOrleans:LatencyModel or --latency-model)", e); }
            loaded = new LoadedModel(loaded.Name, loaded.Directory, new AcceleratorLatencyModel(loaded.Model, profile), loaded.Tokenizer, loaded.Config);
            _log.LogWarning("Model {Model}: SIMULATED accelerator latency {Profile} (benchmarks only)", m.Name, profile);
        }
        var model = loaded.Model;
        _workers[m.Name] = new ModelWorker(m.Name, m.Path, loaded, _options.KvBudgetMB * 1024 * 1024,
            TimeSpan.FromMilliseconds(_options.BatchWindowMs), _options.MaxBatch,
            TimeSpan.FromSeconds(_options.SessionIdleTimeoutSeconds), _loggers.CreateLogger($"ProxyOrleans.Model.{m.Name}"));
        _log.LogInformation("Loaded model {Model} from {Path} in {Ms:F0} ms (vocab {Vocab}, context {Context})",
            m.Name, m.Path, sw.Elapsed.TotalMilliseconds, model.VocabSize, model.MaxSequenceLength);
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Graceful drain, before any hosted service (the silo included) stops: refuse new sessions (callers open them
    /// on another replica), let running ones finish (up to DrainTimeoutSeconds).
    /// </summary>
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        Draining = true;
        // Tell the cluster, so that placement stops choosing this silo (the refusals above catch what arrives meanwhile).
        if (AnnounceDrain is { } announce)
            try { await announce().WaitAsync(TimeSpan.FromSeconds(2), cancellationToken); }
            catch (Exception e) { _log.LogWarning(e, "Announcing the drain failed; new work is refused here all the same"); }
        var open = _workers.Values.Sum(w => w.ActiveSessions);
        if (open > 0) _log.LogInformation("Draining: waiting for {Sessions} open sessions to finish", open);
        await Task.WhenAll(_workers.Values.Select(w => w.DrainAsync(TimeSpan.FromSeconds(_options.DrainTimeoutSeconds), cancellationToken)));
    }

    public void Dispose()
    {
        foreach (var w in _workers.Values) w.Dispose();
        _workers.Clear();
    }
}

/// <summary>The silo is draining: open the session on another replica (transient for the caller).</summary>
[GenerateSerializer]
public sealed class ModelDrainingException : ProxyOrleansException
{
    public ModelDrainingException() { }
    public ModelDrainingException(string message) : base(message) { }
}
