using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using k8s.Models;

namespace ProxyOrleans.Deploy.Tests;

/// <summary>
/// The project's rules for a rendered overlay, beyond the Kubernetes schemas. Each rule adds a sentence
/// naming the object and what is wrong; an empty list means the overlay follows them all.
/// </summary>
public static class ManifestRules
{
    public const string Namespace = "proxyorleans";
    public const string RoleLabel = "proxyorleans.io/role";
    public static readonly string[] ModelRoles = ["base", "expert", "anti-expert"];
    public const string Gpu = "nvidia.com/gpu";
    /// <summary>The non-root user of the images (deploy/docker: USER 1654:1654).</summary>
    public const long ImageUser = 1654;

    public enum GpuExpectation { Required, Forbidden }

    public static GpuExpectation GpuFor(string overlay) =>
        overlay.StartsWith("gpu", StringComparison.Ordinal) ? GpuExpectation.Required : GpuExpectation.Forbidden;

    public static List<string> Check(Manifests m, GpuExpectation gpu)
    {
        var v = new List<string>();
        CheckNamespace(m, v);
        foreach (var w in m.Workloads()) CheckPod(m, w.Name, w.Template, v);
        CheckSilos(m, gpu, v);
        CheckGateway(m, v);
        NetworkPolicyRules.Check(m, v);
        RedisSecretRules.Check(m, v);
        return v;
    }

    static void CheckNamespace(Manifests m, List<string> v)
    {
        if (m.Named<V1Namespace>(Namespace) is null) v.Add($"no Namespace '{Namespace}'.");
        foreach (var o in m.Objects.OfType<IMetadata<V1ObjectMeta>>())
            if (o is not V1Namespace && o.Metadata.NamespaceProperty != Namespace)
                v.Add($"{o.GetType().Name} {o.Metadata.Name} is in namespace '{o.Metadata.NamespaceProperty}', not '{Namespace}'.");
    }

    /// <summary>Every container: readiness and liveness probes, requests and limits, a non-root user.</summary>
    static void CheckPod(Manifests m, string name, V1PodTemplateSpec t, List<string> v)
    {
        var pod = t.Spec;
        foreach (var c in pod.Containers.Concat(pod.InitContainers ?? []))
        {
            var id = $"{name}/{c.Name}";
            bool init = pod.InitContainers?.Contains(c) == true;
            if (!init && c.ReadinessProbe is null) v.Add($"{id} has no readinessProbe.");
            if (!init && c.LivenessProbe is null) v.Add($"{id} has no livenessProbe.");
            var limits = c.Resources?.Limits;
            var requests = c.Resources?.Requests;
            foreach (var r in new[] { "cpu", "memory" })
            {
                if (limits is null || !limits.ContainsKey(r)) v.Add($"{id} has no {r} limit.");
                if (requests is null || !requests.ContainsKey(r)) v.Add($"{id} has no {r} request.");
            }
            bool nonRoot = (c.SecurityContext?.RunAsNonRoot ?? pod.SecurityContext?.RunAsNonRoot) == true;
            long? user = c.SecurityContext?.RunAsUser ?? pod.SecurityContext?.RunAsUser;
            if (!nonRoot) v.Add($"{id}: runAsNonRoot is not true.");
            if (user is null or 0) v.Add($"{id}: runAsUser is {(user is null ? "unset" : "0 (root)")}; set a non-zero user.");
            if (c.SecurityContext?.AllowPrivilegeEscalation != false) v.Add($"{id}: allowPrivilegeEscalation is not false.");
            if (c.SecurityContext?.Privileged == true) v.Add($"{id} is privileged.");
            if (c.Image is null || !c.Image.Contains(':') && !c.Image.Contains('@'))
                v.Add($"{id}: image '{c.Image}' has no tag; pin one (kustomize images:).");
        }
    }

    static void CheckSilos(Manifests m, GpuExpectation gpu, List<string> v)
    {
        var silos = m.Workloads().Where(w => w.Labels.ContainsKey(RoleLabel)).ToList();
        foreach (var role in ModelRoles)
            if (silos.Count(s => s.Labels[RoleLabel] == role) != 1)
                v.Add($"expected one workload with {RoleLabel}={role}, found {silos.Count(s => s.Labels[RoleLabel] == role)}.");

        foreach (var (name, labels, _, t) in silos)
        {
            var pod = t.Spec;
            var c = pod.Containers.Single(x => x.Name == "silo");
            var env = m.EffectiveEnv(c);
            string Env(string k) => env.TryGetValue(k, out var x) ? x : "";

            // The model it hosts, and the metadata that pins that model's grains here.
            var models = new List<string>();
            for (int i = 0; env.ContainsKey($"ProxyOrleans__Models__{i}__Name"); i++)
            {
                models.Add(Env($"ProxyOrleans__Models__{i}__Name"));
                var path = Env($"ProxyOrleans__Models__{i}__Path");
                if (!path.StartsWith("/models/", StringComparison.Ordinal))
                    v.Add($"{name}: ProxyOrleans__Models__{i}__Path '{path}' is not under /models/.");
            }
            if (models.Count == 0 || models.Any(string.IsNullOrWhiteSpace))
                v.Add($"{name}: no ProxyOrleans__Models__0__Name: the silo would host the bundled demo models, not its role's model.");
            if (env.TryGetValue("Orleans__Metadata__proxyorleans.models", out var meta) && meta != string.Join(',', models))
                v.Add($"{name}: Orleans__Metadata__proxyorleans.models '{meta}' disagrees with its models '{string.Join(',', models)}'.");

            if (Env("ProxyOrleans__Demo") != "false") v.Add($"{name}: ProxyOrleans__Demo is not false (a silo started without arguments prints a demo generation).");
            // Clustering through Redis, identity from the downward API.
            if (Env("ProxyOrleans__Clustering") != "redis") v.Add($"{name}: ProxyOrleans__Clustering is '{Env("ProxyOrleans__Clustering")}', not 'redis'.");
            CheckRedis(m, name, Env("ProxyOrleans__Redis"), v);
            if (Env("POD_NAME") != "fieldRef:metadata.name") v.Add($"{name}: POD_NAME does not come from metadata.name.");
            if (Env("POD_IP") != "fieldRef:status.podIP") v.Add($"{name}: POD_IP does not come from status.podIP.");

            // Probes hit the port the silo serves HTTP on.
            var http = c.Ports?.SingleOrDefault(p => p.Name == "http");
            if (http is null || http.ContainerPort.ToString() != Env("ProxyOrleans__HttpPort"))
                v.Add($"{name}: ProxyOrleans__HttpPort '{Env("ProxyOrleans__HttpPort")}' is not the 'http' container port {http?.ContainerPort}.");
            if (c.ReadinessProbe?.HttpGet?.Path != "/readyz") v.Add($"{name}: readinessProbe is not GET /readyz.");
            if (c.LivenessProbe?.HttpGet?.Path != "/healthz") v.Add($"{name}: livenessProbe is not GET /healthz.");
            // Drain on SIGTERM: running sessions get DrainTimeoutSeconds, inside the host's shutdown timeout,
            // inside the kubelet's grace period (defaults: 30 s, 30 s, 30 s).
            double Seconds(string k) => double.TryParse(Env(k), System.Globalization.CultureInfo.InvariantCulture, out var x) ? x : 30;
            var drain = Seconds("ProxyOrleans__DrainTimeoutSeconds");
            var shutdown = Seconds("DOTNET_shutdownTimeoutSeconds");
            var grace = pod.TerminationGracePeriodSeconds ?? 30;
            if (drain < 30) v.Add($"{name}: ProxyOrleans__DrainTimeoutSeconds {drain} is too short for running generations (>= 30).");
            if (shutdown < drain + 10) v.Add($"{name}: DOTNET_shutdownTimeoutSeconds {shutdown} ends the host before the drain ({drain} s) can finish.");
            if (grace < shutdown + 10) v.Add($"{name}: terminationGracePeriodSeconds {grace} kills the pod before the host's shutdown ({shutdown} s) ends.");

            // Network policies that select the silo must let its Orleans and HTTP ports through.
            var policies = m.All<V1NetworkPolicy>().Where(p => Selects(p.Spec.PodSelector, t.Metadata.Labels)).ToList();
            var allowed = policies.SelectMany(p => p.Spec.Ingress ?? []).SelectMany(i => i.Ports ?? []).Select(p => p.Port?.Value).ToHashSet();
            if (policies.Count > 0)
                foreach (var key in new[] { "ProxyOrleans__SiloPort", "ProxyOrleans__GatewayPort", "ProxyOrleans__HttpPort" })
                    if (!allowed.Contains(Env(key))) v.Add($"{name}: no NetworkPolicy ingress rule allows {key} {Env(key)}.");

            if (!m.All<V1PodDisruptionBudget>().Any(p => Selects(p.Spec.Selector, t.Metadata.Labels)))
                v.Add($"{name}: no PodDisruptionBudget selects its pods.");

            CheckGpu(name, pod, c, gpu, v);
            CheckWeights(name, pod, c, gpu, v);
        }
    }

    static void CheckGpu(string name, V1PodSpec pod, V1Container c, GpuExpectation gpu, List<string> v)
    {
        bool limit = c.Resources?.Limits?.ContainsKey(Gpu) == true;
        bool toleration = pod.Tolerations?.Any(t => t.Key == Gpu) == true;
        bool selector = pod.NodeSelector?.Keys.Any(k => k.StartsWith("nvidia.com/", StringComparison.Ordinal)) == true;
        if (gpu == GpuExpectation.Required)
        {
            if (!limit || c.Resources!.Limits[Gpu].ToDecimal() < 1) v.Add($"{name}: requests no {Gpu}.");
            if (!toleration) v.Add($"{name}: no toleration for {Gpu} nodes.");
            if (!selector) v.Add($"{name}: no nodeSelector for GPU nodes.");
            if (c.Env?.Any(e => e.Name == "ProxyOrleans__Device" && e.Value == "cuda") != true)
                v.Add($"{name}: ProxyOrleans__Device is not cuda.");
        }
        else
        {
            if (limit || c.Resources?.Requests?.ContainsKey(Gpu) == true) v.Add($"{name}: requests {Gpu} in a CPU overlay.");
            if (toleration || selector) v.Add($"{name}: GPU node selector or toleration in a CPU overlay.");
        }
    }

    /// <summary>GPU overlays mount weights read-only from a PVC; the CPU demo uses the models baked into its image.</summary>
    static void CheckWeights(string name, V1PodSpec pod, V1Container c, GpuExpectation gpu, List<string> v)
    {
        var mount = c.VolumeMounts?.SingleOrDefault(x => x.MountPath == "/models");
        if (gpu == GpuExpectation.Required)
        {
            var vol = mount is null ? null : pod.Volumes?.SingleOrDefault(x => x.Name == mount.Name);
            if (vol?.PersistentVolumeClaim is null) v.Add($"{name}: /models is not mounted from a PersistentVolumeClaim.");
            else if (mount!.ReadOnlyProperty != true) v.Add($"{name}: /models is mounted writable.");
        }
        else
        {
            if (mount is not null) v.Add($"{name}: a volume hides the demo models baked at /models.");
            if (!c.Image.EndsWith("-demo", StringComparison.Ordinal)) v.Add($"{name}: image '{c.Image}' is not the demo image (target demo, tag *-demo).");
        }
    }

    static void CheckRedis(Manifests m, string name, string redis, List<string> v)
    {
        // "host:port[,options]": the host must be a Service of this rendering (or an external name the operator set).
        var endpoint = redis.Split(',')[0];
        var parts = endpoint.Split(':');
        if (parts.Length != 2 || !int.TryParse(parts[1], out var port)) { v.Add($"{name}: ProxyOrleans__Redis '{redis}' is not host:port."); return; }
        var svc = m.Named<V1Service>(parts[0].Split('.')[0]);
        if (svc is null) v.Add($"{name}: ProxyOrleans__Redis host '{parts[0]}' is not a Service here.");
        else if (svc.Spec.Ports.All(p => p.Port != port)) v.Add($"{name}: Service {svc.Metadata.Name} has no port {port}.");
    }

    static void CheckGateway(Manifests m, List<string> v)
    {
        var gw = m.All<V1Deployment>().SingleOrDefault(d => d.Metadata.Name == "gateway");
        if (gw is null) { v.Add("no gateway Deployment."); return; }
        var labels = gw.Spec.Template.Metadata.Labels;
        if (!m.All<V1Service>().Any(s => s.Spec.Selector is { } sel && sel.All(kv => labels.TryGetValue(kv.Key, out var x) && x == kv.Value)))
            v.Add("no Service selects the gateway pods.");
        if (!m.All<V2HorizontalPodAutoscaler>().Any(h => h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == "gateway"))
            v.Add("no HorizontalPodAutoscaler scales the gateway.");

        var c = gw.Spec.Template.Spec.Containers.Single();
        var env = m.EffectiveEnv(c);
        if (env.GetValueOrDefault("ProxyOrleans__Clustering") != "redis") v.Add("gateway: ProxyOrleans__Clustering is not redis.");
        CheckRedis(m, "gateway", env.GetValueOrDefault("ProxyOrleans__Redis", ""), v);

        // Streams in flight finish on SIGTERM: the preStop pause plus the host's shutdown fit in the grace period. The
        // gateway raises its host's shutdown timeout to its drain (DrainDelaySeconds + DrainGraceSeconds + 10 s).
        static double Number(Dictionary<string, string> e, string key, double otherwise) =>
            double.TryParse(e.GetValueOrDefault(key), System.Globalization.CultureInfo.InvariantCulture, out var x) ? x : otherwise;
        var gwShutdown = Math.Max(Number(env, "DOTNET_shutdownTimeoutSeconds", 30),
            Number(env, "ProxyOrleans__Gateway__DrainDelaySeconds", 0) + Number(env, "ProxyOrleans__Gateway__DrainGraceSeconds", 20) + 10);
        var preStop = c.Lifecycle?.PreStop?.Exec?.Command is ["sleep", var secs] && double.TryParse(secs, out var ps) ? ps : 0;
        var gwGrace = gw.Spec.Template.Spec.TerminationGracePeriodSeconds ?? 30;
        if (gwGrace < preStop + gwShutdown + 5)
            v.Add($"gateway: terminationGracePeriodSeconds {gwGrace} is shorter than preStop ({preStop} s) + shutdown ({gwShutdown} s) + 5.");

        // Tenants: a Secret file with hashed keys, mounted where ProxyOrleans__TenantsFile points.
        var file = env.GetValueOrDefault("ProxyOrleans__TenantsFile", "");
        var mount = c.VolumeMounts?.SingleOrDefault(x => file.StartsWith(x.MountPath + "/", StringComparison.Ordinal));
        var secretName = mount is null ? null : gw.Spec.Template.Spec.Volumes.Single(x => x.Name == mount.Name).Secret?.SecretName;
        var secret = secretName is null ? null : m.Named<V1Secret>(secretName);
        if (secret is null) v.Add($"gateway: ProxyOrleans__TenantsFile '{file}' is not in a mounted Secret of this rendering.");
        else
        {
            var key = Path.GetFileName(file);
            if (secret.Data?.TryGetValue(key, out var bytes) != true) v.Add($"Secret {secretName} has no key {key}.");
            else CheckTenants(Encoding.UTF8.GetString(bytes!), secretName!, v);
        }

        // Combinations name only models some silo role hosts.
        var hosted = m.Workloads().Where(w => w.Labels.ContainsKey(RoleLabel))
            .Select(w => m.EffectiveEnv(w.Template.Spec.Containers.Single(x => x.Name == "silo")).GetValueOrDefault("ProxyOrleans__Models__0__Name"))
            .ToHashSet();
        static string Combos(Dictionary<string, string> e) => string.Join(";", e.Where(kv => kv.Key.StartsWith("ProxyOrleans__Combinations__", StringComparison.Ordinal))
            .OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key + "=" + kv.Value));
        var combos = env.Where(kv => kv.Key.StartsWith("ProxyOrleans__Combinations__", StringComparison.Ordinal)).ToList();
        if (combos.Count == 0) v.Add("gateway: no ProxyOrleans__Combinations__* configured.");
        // Silos resolve combination names too (coordinators, /readyz): they must see the gateway's list.
        foreach (var w in m.Workloads().Where(w => w.Labels.ContainsKey(RoleLabel)))
            if (Combos(m.EffectiveEnv(w.Template.Spec.Containers.Single(x => x.Name == "silo"))) != Combos(env))
                v.Add($"{w.Name}: its ProxyOrleans__Combinations__* differ from the gateway's.");
        foreach (var (k, model) in combos)
            if ((k.EndsWith("__Base") || k.EndsWith("__Expert") || k.EndsWith("__AntiExpert")) && !hosted.Contains(model))
                v.Add($"gateway: {k}={model} names a model no silo role hosts ({string.Join(", ", hosted)}).");
    }

    static void CheckTenants(string json, string secret, List<string> v)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            foreach (var t in doc.RootElement.GetProperty("tenants").EnumerateArray())
            {
                var hash = t.GetProperty("keySha256").GetString() ?? "";
                if (hash.Length != 64 || !hash.All(Uri.IsHexDigit))
                    v.Add($"Secret {secret}: tenant {t.GetProperty("name")} keySha256 is not a SHA-256 hex digest (keys are stored hashed).");
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            v.Add($"Secret {secret}: tenants.json is not {{\"tenants\": [...]}}: {e.Message}");
        }
    }

    static bool Selects(V1LabelSelector? s, IDictionary<string, string> labels) =>
        s?.MatchLabels is { Count: > 0 } ml && ml.All(kv => labels.TryGetValue(kv.Key, out var x) && x == kv.Value);

    public static string Sha256Hex(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
}
