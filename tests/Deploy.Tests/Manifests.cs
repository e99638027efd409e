using k8s;
using k8s.Models;

namespace ProxyOrleans.Deploy.Tests;

/// <summary>The objects an overlay renders to, typed (strict: a field the API does not know is an error).</summary>
public sealed class Manifests
{
    public const string OverlaysDir = "deploy/k8s/overlays";

    public IReadOnlyList<object> Objects { get; }
    public string Yaml { get; }

    public Manifests(string yaml)
    {
        Yaml = yaml;
        Objects = KubernetesYaml.LoadAllFromString(yaml, typeMap: null, strict: true);
    }

    /// <summary>Every overlay directory, by name (cpu-demo, gpu-production, ...).</summary>
    public static IEnumerable<string> Overlays() =>
        Directory.GetDirectories(Repo.PathOf(OverlaysDir)).Select(Path.GetFileName).Order()!;

    /// <summary>Renders an overlay with `kubectl kustomize` exactly as `kubectl apply -k` would.</summary>
    public static Manifests Render(string overlay)
    {
        var r = Repo.Run("kubectl", ["kustomize", Path.Combine(Repo.Root, OverlaysDir, overlay)]);
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"kubectl kustomize {overlay} failed ({r.ExitCode}):\n{r.Stderr}");
        return new Manifests(r.Stdout);
    }

    public IEnumerable<T> All<T>() => Objects.OfType<T>();

    public T? Named<T>(string name) where T : class, IMetadata<V1ObjectMeta> =>
        All<T>().SingleOrDefault(o => o.Metadata.Name == name);

    /// <summary>Workloads with their pod templates (Deployments and StatefulSets).</summary>
    public IEnumerable<(string Name, IDictionary<string, string> Labels, int Replicas, V1PodTemplateSpec Template)> Workloads() =>
        All<V1Deployment>().Select(d => (d.Metadata.Name, d.Metadata.Labels ?? new Dictionary<string, string>(), d.Spec.Replicas ?? 1, d.Spec.Template))
            .Concat(All<V1StatefulSet>().Select(s => (s.Metadata.Name, s.Metadata.Labels ?? new Dictionary<string, string>(), s.Spec.Replicas ?? 1, s.Spec.Template)));

    /// <summary>
    /// The environment a container sees: ConfigMaps from envFrom (resolved in this rendering), then env.
    /// Downward-API values appear as "fieldRef:&lt;path&gt;", Secret keys as "secretKeyRef:&lt;secret&gt;/&lt;key&gt;", other references as "ref".
    /// </summary>
    public Dictionary<string, string> EffectiveEnv(V1Container c)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var from in c.EnvFrom ?? [])
        {
            if (from.ConfigMapRef is { } cmRef)
            {
                var cm = Named<V1ConfigMap>(cmRef.Name)
                         ?? throw new InvalidOperationException($"container {c.Name}: envFrom ConfigMap '{cmRef.Name}' is not in the rendering.");
                foreach (var (k, v) in cm.Data ?? new Dictionary<string, string>()) env[(from.Prefix ?? "") + k] = v;
            }
        }
        foreach (var e in c.Env ?? [])
            env[e.Name] = e.Value ?? (e.ValueFrom?.FieldRef is { } f ? "fieldRef:" + f.FieldPath
                : e.ValueFrom?.SecretKeyRef is { } sk ? $"secretKeyRef:{sk.Name}/{sk.Key}" : "ref");
        return env;
    }
}
