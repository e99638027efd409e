using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ProxyOrleans.Abstractions;

namespace ProxyOrleans.Client.Benchmarks;

/// <summary>
/// Several real silo processes (src/Silo) on loopback, clustered with localhost clustering and a primary, plus a
/// client connected to their gateways. Used by `bench cluster` and the multi-process tests. Kills its processes on dispose.
/// </summary>
public sealed class LoopbackCluster : IAsyncDisposable
{
    public sealed record SiloSpec(string Name, params (string Name, string Path)[] Models)
    {
        /// <summary>Configuration of this silo only (after the cluster-wide keys), e.g. its simulated latency model.</summary>
        public IReadOnlyDictionary<string, string>? Config { get; init; }
    }

    private readonly Dictionary<int, HostProcess> _processes = []; // by silo index
    private readonly TextWriter? _log;
    private readonly List<SiloSpec> _silos;
    private readonly List<int> _siloPorts, _gatewayPorts, _httpPorts;
    public IReadOnlyList<SiloSpec> Silos => _silos;
    public IReadOnlyList<int> SiloPorts => _siloPorts;
    public IReadOnlyList<int> GatewayPorts => _gatewayPorts;
    /// <summary>Each silo's /healthz /readyz /metrics port.</summary>
    public IReadOnlyList<int> HttpPorts => _httpPorts;
    public IHost? Client { get; private set; }
    public IGrainFactory Grains => Client!.Services.GetRequiredService<IGrainFactory>();
    public string ClusterId { get; }

    /// <summary>A fresh cluster id, so that runs sharing one Redis never see each other's silos.</summary>
    public static string NewClusterId() => "loopback-" + Guid.NewGuid().ToString("N")[..8];

    private LoopbackCluster(IReadOnlyList<SiloSpec> silos, TextWriter? log, string clusterId)
    {
        ClusterId = clusterId;
        _silos = [.. silos];
        _log = log;
        _siloPorts = silos.Select(_ => LoopbackPorts.Next()).ToList();
        _gatewayPorts = silos.Select(_ => LoopbackPorts.Next()).ToList();
        _httpPorts = silos.Select(_ => LoopbackPorts.Next()).ToList();
    }

    /// <summary>
    /// The client's response timeout: a generation's next token normally comes within milliseconds, so a dead
    /// coordinator (or a call dropped by a stopping gateway) is noticed within seconds, not Orleans' default 30 s.
    /// </summary>
    public static readonly TimeSpan ClientResponseTimeout = TimeSpan.FromSeconds(10);

    /// <param name="clusterId">Default: <see cref="NewClusterId"/>. Given, so that clients (gateway processes) can be started alongside.</param>
    public static async Task<LoopbackCluster> StartAsync(IReadOnlyList<SiloSpec> silos, TextWriter? log = null,
        IReadOnlyDictionary<string, string>? extraConfig = null, CancellationToken ct = default, string? clusterId = null)
    {
        var c = new LoopbackCluster(silos, log, clusterId ?? NewClusterId());
        try
        {
            var dll = RepositoryLayout.BuiltDll("Silo");
            await c.StartSiloAsync(dll, 0, extraConfig, ct); // the primary first
            await Task.WhenAll(Enumerable.Range(1, silos.Count - 1).Select(i => c.StartSiloAsync(dll, i, extraConfig, ct)));
            c._extra = extraConfig;
            c.Client = await ClusterConnection.ConnectAsync([.. c.GatewayPorts], null, c.ClusterId, ct, ClientResponseTimeout);
            await c.WaitForModelsAsync(silos.SelectMany(s => s.Models.Select(m => m.Name)).Distinct().ToArray(), ct);
            return c;
        }
        catch
        {
            await c.DisposeAsync();
            throw;
        }
    }

    private async Task StartSiloAsync(string dll, int i, IReadOnlyDictionary<string, string>? extra, CancellationToken ct)
    {
        var s = Silos[i];
        var args = new List<string>();
        if (s.Models.Length > 0) { args.Add("--models"); args.Add(string.Join(",", s.Models.Select(m => $"{m.Name}={m.Path}"))); }
        args.AddRange(["--silo-port", SiloPorts[i].ToString(), "--gateway-port", GatewayPorts[i].ToString(),
            "--primary-port", SiloPorts[0].ToString(), "--cluster-id", ClusterId, "--http-port", HttpPorts[i].ToString(), "--name", s.Name,
            "--no-demo", "--fast-failure"]);
        foreach (var (k, v) in (extra ?? new Dictionary<string, string>()).Concat(s.Config ?? new Dictionary<string, string>())) args.Add($"--{k}={v}");
        // A silo with no models must not fall back to the demo models: advertise an empty model list explicitly.
        if (s.Models.Length == 0) args.Add("--Orleans:Metadata:proxyorleans.models=");
        var environment = new Dictionary<string, string> { ["DOTNET_GCLOHThreshold"] = "0x200000" };
        // The shell's settings are kept: a benchmark runs the silos as this machine (or the image) configures them.
        var p = new HostProcess(s.Name, dll, environment, Environment.CurrentDirectory, args, keepInheritedSettings: true, log: _log);
        lock (_processes) _processes[i] = p;
        if (await p.WaitForOutputLineAsync(l => l.StartsWith("Silo up", StringComparison.Ordinal), TimeSpan.FromSeconds(120), ct) is not null) return;
        if (p.HasExited) throw new InvalidOperationException($"Silo {s.Name} exited with {p.ExitCode}: {p.StandardError}");
        throw new TimeoutException($"Silo {s.Name} did not report \"Silo up\" within 120 s:\n{p.Tail()}");
    }

    private IReadOnlyDictionary<string, string>? _extra;

    /// <summary>Starts one more silo process in the running cluster; returns its index.</summary>
    public async Task<int> AddSiloAsync(SiloSpec spec, CancellationToken ct = default)
    {
        int i;
        lock (_processes)
        {
            _silos.Add(spec); _siloPorts.Add(LoopbackPorts.Next()); _gatewayPorts.Add(LoopbackPorts.Next()); _httpPorts.Add(LoopbackPorts.Next());
            i = _silos.Count - 1;
        }
        await StartSiloAsync(RepositoryLayout.BuiltDll("Silo"), i, _extra, ct);
        await WaitForModelsAsync(spec.Models.Select(m => m.Name).ToArray(), ct);
        return i;
    }

    /// <summary>
    /// Starts a fresh process for silo <paramref name="index"/>'s role, once its previous process has exited (a rolling
    /// update's new pod): same models, configuration and ports, so the client's static gateway list still reaches it.
    /// Returns when the new silo reports ready on /readyz (its models advertised, every combination servable).
    /// </summary>
    public async Task RestartSiloAsync(int index, CancellationToken ct = default)
    {
        HostProcess old;
        lock (_processes) old = _processes[index];
        if (!old.HasExited)
            throw new InvalidOperationException($"Silo {Silos[index].Name} still runs: stop it (Terminate or Kill) and wait for its exit before restarting it.");
        await StartSiloAsync(RepositoryLayout.BuiltDll("Silo"), index, _extra, ct);
        old.Dispose();
        var sw = Stopwatch.StartNew();
        string last = "";
        while (sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            try
            {
                using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
                using var r = await http.GetAsync($"http://127.0.0.1:{HttpPorts[index]}/readyz", ct);
                last = await r.Content.ReadAsStringAsync(ct);
                if (r.IsSuccessStatusCode) return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested) { last = e.Message; }
            await Task.Delay(200, ct);
        }
        throw new TimeoutException($"The restarted silo {Silos[index].Name} was not ready within 60 s: {last}");
    }

    /// <summary>Waits until the cluster's directory lists every model (silo metadata has propagated).</summary>
    public async Task WaitForModelsAsync(string[] models, CancellationToken ct = default)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                var m = await Grains.GetGrain<IModelDirectoryGrain>(DirectoryKeys.Default).GetModels();
                var hosted = m.Models.Select(x => x.Name).ToHashSet();
                if (models.All(hosted.Contains)) return;
            }
            catch when (sw.Elapsed < TimeSpan.FromSeconds(60)) { }
            if (sw.Elapsed > TimeSpan.FromSeconds(60)) throw new TimeoutException($"The cluster did not list models [{string.Join(", ", models)}] within 60 s.");
            await Task.Delay(200, ct);
        }
    }

    /// <summary>Index of the live silo whose /metrics shows an open session of <paramref name="model"/>, or −1.</summary>
    public async Task<int> SiloWithSessionAsync(string model)
    {
        for (int i = 0; i < Silos.Count; i++)
        {
            if (!IsRunning(i)) continue;
            try
            {
                var metrics = await GetAsync(i, "/metrics");
                // proxyorleans_model_sessions{...,model="<model>",...} <value> (the exporter adds labels of its own)
                var line = metrics.Split('\n').FirstOrDefault(l => l.StartsWith("proxyorleans_model_sessions{") && l[..l.IndexOf('}')].Contains($"model=\"{model}\""));
                if (line is not null && double.Parse(line.Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture) > 0) return i;
            }
            catch (HttpRequestException) { }
        }
        return -1;
    }

    /// <summary>
    /// KV-cache bytes reserved by open model sessions on every live silo (the sum of their
    /// proxyorleans_model_kv_reserved_bytes gauges): 0 when every session was freed.
    /// </summary>
    public async Task<long> KvReservedBytesAsync()
    {
        long reserved = 0;
        for (int i = 0; i < Silos.Count; i++)
        {
            if (!IsRunning(i)) continue;
            try
            {
                foreach (var line in (await GetAsync(i, "/metrics")).Split('\n'))
                    if (line.StartsWith("proxyorleans_model_kv_reserved_bytes{", StringComparison.Ordinal))
                        reserved += (long)double.Parse(line.Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (HttpRequestException) { } // died since: it holds nothing any more
        }
        return reserved;
    }

    public async Task<string> GetAsync(int silo, string path)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        return await http.GetStringAsync($"http://127.0.0.1:{HttpPorts[silo]}{path}");
    }

    /// <summary>Kills silo <paramref name="index"/>'s process at once (no drain), as a crash would.</summary>
    /// <summary>CPU time silo <paramref name="index"/>'s process has used so far.</summary>
    public TimeSpan CpuTime(int index) => _processes[index].CpuTime;

    public void Kill(int index) => _processes[index].Kill(TimeSpan.FromSeconds(10));

    /// <summary>Asks silo <paramref name="index"/> to stop (SIGTERM, as Kubernetes does in a rolling update): it drains, then exits.</summary>
    public void Terminate(int index) => _processes[index].SendTerminate();

    /// <summary>Waits for silo <paramref name="index"/>'s process to exit; its exit code, or null if it is still running.</summary>
    public async Task<int?> WaitForExitAsync(int index, TimeSpan timeout)
    {
        var p = _processes[index];
        return await p.WaitForExitAsync(timeout) ? p.ExitCode : null;
    }

    public bool IsRunning(int index) => _processes.TryGetValue(index, out var p) && !p.HasExited;

    public async ValueTask DisposeAsync()
    {
        if (Client is not null)
        {
            try { await Client.StopAsync(TimeSpan.FromSeconds(5)); } catch { }
            Client.Dispose();
        }
        foreach (var p in _processes.Values) p.Dispose();
        _processes.Clear();
    }
}
