using ProxyOrleans.Inference.Models;

namespace ProxyOrleans.Grains.Hosting;

/// <summary>One model this silo hosts: its name in the cluster and its HF-layout directory.</summary>
public sealed class HostedModelOptions
{
    public string Name { get; set; } = "";
    public string Path { get; set; } = "";
    /// <summary>
    /// The chat template: null or "auto" renders the model's own Jinja template (chat_template.jinja, else
    /// tokenizer_config.json's); "none" drops it; "llama2", "llama3" or "chatml" overrides it with that built-in family
    /// (for a template the Jinja renderer refuses). An unknown name fails the silo at start.
    /// </summary>
    public string? ChatTemplate { get; set; }
    /// <summary>Benchmarks only: overrides <see cref="ProxyOrleansOptions.LatencyModel"/> for this model.</summary>
    public string? LatencyModel { get; set; }
}

public sealed class ExpertOptions
{
    public string Expert { get; set; } = "";
    public string AntiExpert { get; set; } = "";
    public float Weight { get; set; } = 1f;
}

public sealed class CombinationOptions
{
    public string Base { get; set; } = "";
    public float Alpha { get; set; } = 1f;
    public List<ExpertOptions> Experts { get; set; } = [];
    /// <summary>Default answer cue of the combination (a request may give its own), e.g. "Question: {prompt}\nAnswer:".</summary>
    public string? AnswerCue { get; set; }
    /// <summary>Default text after the experts' chat template (a request may give its own), e.g. "Answer:".</summary>
    public string? ExpertResponsePrefix { get; set; }

    public CombinationSpec ToSpec() =>
        new(Base, Experts.Select(e => new ExpertSpec(e.Expert, e.AntiExpert, e.Weight)).ToArray(), Alpha, AnswerCue, ExpertResponsePrefix);
}

/// <summary>The "ProxyOrleans" configuration section (keys listed in docs/gateway.md and docs/distributed.md).</summary>
public sealed class ProxyOrleansOptions
{
    public const string Section = "ProxyOrleans";
    /// <summary>Silo metadata key advertising the comma-separated names of the hosted models.</summary>
    public const string ModelsMetadataKey = "proxyorleans.models";

    public List<HostedModelOptions> Models { get; set; } = [];
    public Dictionary<string, CombinationOptions> Combinations { get; set; } = new(StringComparer.Ordinal);

    /// <summary>KV-cache memory budget per hosted model, in MB; an Open beyond it fails with a clear error.</summary>
    public long KvBudgetMB { get; set; } = 2048;
    /// <summary>
    /// How long a model waits, before running a decode batch, for the sessions of its previous batch that have not sent
    /// their next step yet (their coordinators are still combining, or waiting on another model). 0 (default): natural
    /// batching only — whatever queued up while the previous batch ran goes into the next one.
    /// </summary>
    public double BatchWindowMs { get; set; }
    /// <summary>Largest batch of sessions in one forward.</summary>
    public int MaxBatch { get; set; } = 16;
    /// <summary>Sessions untouched this long are freed.</summary>
    public double SessionIdleTimeoutSeconds { get; set; } = 120;
    /// <summary>On shutdown, wait this long for running sessions to finish before stopping.</summary>
    public double DrainTimeoutSeconds { get; set; } = 30;
    /// <summary>
    /// On shutdown, after this silo's gateway has told its clients to send through other gateways, it keeps relaying
    /// the calls already in flight this long before it stops. Orleans 10 waits 0 s by default: the responses of those
    /// calls were dropped and each one hung until the client's response timeout (docs/distributed.md, rolling restarts).
    /// </summary>
    public double GatewayHandOffSeconds { get; set; } = 2;
    /// <summary>Timeout of one step call (retried on transient faults).</summary>
    public double StepTimeoutSeconds { get; set; } = 30;
    /// <summary>Device the hosted models run on: cpu, cuda or cuda:N (ProxyOrleans__Device=cuda on GPU nodes).</summary>
    public string Device { get; set; } = "cpu";
    /// <summary>Torch intra-op threads per silo (0 = leave as is).</summary>
    public int Threads { get; set; }
    /// <summary>
    /// Benchmarks and tests only: pad every forward of the hosted models to a simulated accelerator's latency (a preset such as
    /// base-70b-h200, or fixed=&lt;ms&gt;,row=&lt;ms&gt;,...; see AcceleratorLatencyProfile). Logits stay the real model's.
    /// </summary>
    public string? LatencyModel { get; set; }

    /// <summary>How every hosted model is run (the Inference library's options).</summary>
    public InferenceOptions Inference(string name) => new() { Name = name, Device = Device, Threads = Threads };
}
