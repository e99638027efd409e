using k8s.Models;

namespace ProxyOrleans.Deploy.Tests;

/// <summary>
/// Who may connect to which port of which pod, computed from the rendered NetworkPolicies the way the API defines
/// them (a pod selected by no Ingress policy accepts everything; once selected, only what some rule allows; a peer
/// with only a podSelector means pods of the policy's own namespace). Internal ports (every container port not
/// named "http") must be reachable only from the project's own pods, and from exactly the roles that need them.
/// </summary>
public static class NetworkPolicyRules
{
    public const string NameLabel = "app.kubernetes.io/name";
    public const string PartOfLabel = "app.kubernetes.io/part-of";
    public const string PartOf = "proxyorleans";

    /// <summary>Internal container ports (by name) and the pods (by app.kubernetes.io/name) that must reach them.</summary>
    public static readonly IReadOnlyDictionary<string, string[]> InternalPorts = new Dictionary<string, string[]>
    {
        ["redis"] = ["silo", "gateway"],  // the Orleans membership table
        ["silo"] = ["silo"],              // silo-to-silo
        ["orleans-gw"] = ["gateway"],     // Orleans clients (the gateways)
    };

    /// <summary>One source a rule lets in: anywhere, an IP block, or pods (of this namespace unless a namespace selector is given).</summary>
    public sealed record Peer(string Description, bool Anywhere, V1LabelSelector? Pods, V1LabelSelector? Namespaces, V1IPBlock? IpBlock);

    public static void Check(Manifests m, List<string> v)
    {
        var policies = m.All<V1NetworkPolicy>().Where(p => p.Spec.PolicyTypes?.Contains("Ingress") != false).ToList();
        if (!policies.Any(p => p.Spec.PodSelector?.MatchLabels is not { Count: > 0 } && p.Spec.PodSelector?.MatchExpressions is not { Count: > 0 }
                               && p.Spec.Ingress is not { Count: > 0 }))
            v.Add("no default-deny NetworkPolicy (podSelector {}, no ingress rules): pods the rules below do not name would accept any connection.");

        foreach (var (name, _, _, t) in m.Workloads())
        {
            var labels = t.Metadata.Labels ?? new Dictionary<string, string>();
            var selecting = policies.Where(p => Selects(p.Spec.PodSelector, labels)).ToList();
            var ports = t.Spec.Containers.SelectMany(c => c.Ports ?? []).ToList();
            if (ports.Count > 0 && selecting.Count == 0)
            {
                v.Add($"{name}: no NetworkPolicy selects its pods: every port is open to anyone.");
                continue;
            }
            foreach (var port in ports)
            {
                var id = $"{name}: port {port.ContainerPort} ({port.Name ?? "unnamed"})";
                var peers = PeersOf(selecting, port);
                if (peers.Count == 0) { v.Add($"{id} is reachable from nowhere."); continue; }
                if (port.Name == "http") continue; // the API, probes and metrics: open by design (README, "Network access")
                if (port.Name is null || !InternalPorts.TryGetValue(port.Name, out var needed))
                {
                    v.Add($"{id}: an internal port with no entry in NetworkPolicyRules.InternalPorts (say which pods must reach it).");
                    continue;
                }
                foreach (var p in peers)
                    if (!IsProjectPods(p)) v.Add($"{id} is open to {p.Description}, not only to ProxyOrleans pods.");
                foreach (var role in needed)
                {
                    var rolePods = m.Workloads().Where(w => Label(w.Template.Metadata.Labels, NameLabel) == role).ToList();
                    if (rolePods.Count == 0) v.Add($"{id}: no workload with {NameLabel}={role}, which must reach it.");
                    foreach (var (wName, _, _, wTemplate) in rolePods)
                        if (!peers.Any(p => IsProjectPods(p) && Selects(p.Pods, wTemplate.Metadata.Labels!)))
                            v.Add($"{id} is not reachable from {wName} ({NameLabel}={role}).");
                }
            }
        }
    }

    /// <summary>The sources allowed to reach <paramref name="port"/> by any of the policies (rules without ports cover every port).</summary>
    public static List<Peer> PeersOf(IEnumerable<V1NetworkPolicy> selecting, V1ContainerPort port)
    {
        var peers = new List<Peer>();
        foreach (var policy in selecting)
            foreach (var rule in policy.Spec.Ingress ?? [])
            {
                if (rule.Ports is { Count: > 0 } && !rule.Ports.Any(p => Covers(p, port))) continue;
                var where = $"policy {policy.Metadata.Name}";
                if (rule.FromProperty is not { Count: > 0 }) { peers.Add(new($"anywhere (a rule of {where} has no `from`)", true, null, null, null)); continue; }
                foreach (var f in rule.FromProperty)
                {
                    if (f.IpBlock is { } ip) peers.Add(new($"IP block {ip.Cidr} ({where})", false, null, null, ip));
                    else if (f.NamespaceSelector is { } ns)
                        peers.Add(new($"pods of other namespaces (a namespaceSelector in {where})", false, f.PodSelector, ns, null));
                    else if (f.PodSelector is { } pods)
                        peers.Add(new($"pods matching {Describe(pods)} ({where})", false, pods, null, null));
                }
            }
        return peers;
    }

    /// <summary>Pods of this namespace, selected by the project's labels only (part-of and a name), no expressions.</summary>
    static bool IsProjectPods(Peer p) =>
        !p.Anywhere && p.IpBlock is null && p.Namespaces is null && p.Pods is { MatchExpressions: not { Count: > 0 } } s
        && Label(s.MatchLabels, PartOfLabel) == PartOf && Label(s.MatchLabels, NameLabel) is not null;

    static string? Label(IDictionary<string, string>? labels, string key) => labels is not null && labels.TryGetValue(key, out var x) ? x : null;

    static bool Covers(V1NetworkPolicyPort rule, V1ContainerPort port)
    {
        if ((rule.Protocol ?? "TCP") != (port.Protocol ?? "TCP")) return false;
        if (rule.Port is null) return true; // every port
        var value = rule.Port.Value;
        if (!int.TryParse(value, out var n)) return value == port.Name;
        return rule.EndPort is int end ? port.ContainerPort >= n && port.ContainerPort <= end : port.ContainerPort == n;
    }

    /// <summary>An empty selector ({}) selects every pod; matchExpressions are not used by the project (treated as selecting all).</summary>
    public static bool Selects(V1LabelSelector? s, IDictionary<string, string> labels) =>
        s?.MatchLabels is not { Count: > 0 } ml || ml.All(kv => labels.TryGetValue(kv.Key, out var x) && x == kv.Value);

    static string Describe(V1LabelSelector s) =>
        s.MatchLabels is { Count: > 0 } ml ? "{" + string.Join(", ", ml.Select(kv => $"{kv.Key}={kv.Value}")) + "}"
        : s.MatchExpressions is { Count: > 0 } ? "label expressions" : "{} (every pod of the namespace)";
}
