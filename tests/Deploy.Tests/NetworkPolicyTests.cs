using k8s.Models;
using Xunit;

namespace ProxyOrleans.Deploy.Tests;

/// <summary>
/// The rendered NetworkPolicies keep Redis and the Orleans ports (silo-to-silo, client-to-silo) to the project's
/// own pods, cover every pod that listens, and the check notices when a rule is removed or widened.
/// </summary>
public class NetworkPolicyTests
{
    public static TheoryData<string> Overlays() => new(Manifests.Overlays());

    static List<string> Violations(Manifests m)
    {
        var v = new List<string>();
        NetworkPolicyRules.Check(m, v);
        return v;
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Internal_ports_are_reachable_only_from_the_pods_that_need_them(string overlay)
    {
        var m = Manifests.Render(overlay);
        var v = Violations(m);
        Assert.True(v.Count == 0, $"{overlay}:\n  " + string.Join("\n  ", v));

        // Every workload that listens is selected by a policy, and each of its internal ports has exactly the
        // project's peers the table names: nothing from another namespace, an IP block or "anywhere".
        var policies = m.All<V1NetworkPolicy>().ToList();
        int internalPorts = 0;
        foreach (var (name, _, _, t) in m.Workloads())
        {
            var selecting = policies.Where(p => NetworkPolicyRules.Selects(p.Spec.PodSelector, t.Metadata.Labels)).ToList();
            Assert.True(selecting.Count > 0, $"{name} is selected by no NetworkPolicy.");
            foreach (var port in t.Spec.Containers.SelectMany(c => c.Ports ?? []).Where(p => p.Name != "http"))
            {
                internalPorts++;
                var peers = NetworkPolicyRules.PeersOf(selecting, port);
                Assert.All(peers, p => Assert.True(p.Namespaces is null && p.IpBlock is null && !p.Anywhere, $"{name}:{port.ContainerPort} open to {p.Description}"));
                var roles = peers.Select(p => p.Pods!.MatchLabels[NetworkPolicyRules.NameLabel]).Order().ToArray();
                Assert.Equal(NetworkPolicyRules.InternalPorts[port.Name].Order().ToArray(), roles);
            }
        }
        Assert.Equal(1 + 3 * 2, internalPorts); // Redis, and the silo and gateway ports of the three silo roles
    }

    [Fact]
    public void Removing_a_rule_is_reported()
    {
        var m = Manifests.Render("cpu-demo");
        m.Named<V1NetworkPolicy>("redis")!.Spec.Ingress.Clear();
        var silo = m.Named<V1NetworkPolicy>("silo")!;
        silo.Spec.Ingress.RemoveAt(1); // the gateways' rule for the Orleans gateway port
        var v = Violations(m);
        Assert.Contains("redis: port 6379 (redis) is reachable from nowhere.", v);
        Assert.Contains("silo-base: port 30000 (orleans-gw) is reachable from nowhere.", v);

        // A peer dropped from a rule: the gateways can no longer reach Redis.
        m = Manifests.Render("cpu-demo");
        m.Named<V1NetworkPolicy>("redis")!.Spec.Ingress[0].FromProperty.RemoveAt(1);
        Assert.Contains("redis: port 6379 (redis) is not reachable from gateway (app.kubernetes.io/name=gateway).", Violations(m));

        // Without the default deny, a pod no policy names (a weights loader, a debug pod) takes any connection.
        m = Manifests.Render("cpu-demo");
        Assert.True(((List<object>)m.Objects).Remove(m.Named<V1NetworkPolicy>("default-deny-ingress")!));
        Assert.Contains(Violations(m), x => x.StartsWith("no default-deny NetworkPolicy"));
        Assert.True(((List<object>)m.Objects).Remove(m.Named<V1NetworkPolicy>("gateway")!));
        Assert.Contains("gateway: no NetworkPolicy selects its pods: every port is open to anyone.", Violations(m));
    }

    [Fact]
    public void Widening_a_rule_is_reported()
    {
        // `from` dropped: the silo port open to anyone who can route to the pod.
        var m = Manifests.Render("gpu-production");
        m.Named<V1NetworkPolicy>("silo")!.Spec.Ingress[0].FromProperty = null;
        Assert.Contains(Violations(m), x => x.StartsWith("silo-expert: port 11111 (silo) is open to anywhere"));

        // Another namespace, an IP block, every pod of the namespace, a label anyone may set.
        m = Manifests.Render("gpu-production");
        var from = m.Named<V1NetworkPolicy>("redis")!.Spec.Ingress[0].FromProperty;
        from.Add(new V1NetworkPolicyPeer { NamespaceSelector = new V1LabelSelector() });
        from.Add(new V1NetworkPolicyPeer { IpBlock = new V1IPBlock { Cidr = "0.0.0.0/0" } });
        from.Add(new V1NetworkPolicyPeer { PodSelector = new V1LabelSelector() });
        from.Add(new V1NetworkPolicyPeer { PodSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = "debug" } } });
        var v = Violations(m);
        Assert.Contains(v, x => x.StartsWith("redis: port 6379 (redis) is open to pods of other namespaces"));
        Assert.Contains(v, x => x.StartsWith("redis: port 6379 (redis) is open to IP block 0.0.0.0/0"));
        Assert.Contains(v, x => x.StartsWith("redis: port 6379 (redis) is open to pods matching {} (every pod of the namespace)"));
        Assert.Contains(v, x => x.StartsWith("redis: port 6379 (redis) is open to pods matching {app=debug}"));

        // A rule without ports covers every port: the silo's HTTP rule widened to the Orleans ports.
        m = Manifests.Render("gpu-production");
        m.Named<V1NetworkPolicy>("silo")!.Spec.Ingress[2].Ports = null;
        v = Violations(m);
        Assert.Contains(v, x => x.StartsWith("silo-base: port 11111 (silo) is open to anywhere"));
        Assert.Contains(v, x => x.StartsWith("silo-base: port 30000 (orleans-gw) is open to anywhere"));
    }

    [Fact]
    public void A_new_listening_port_must_say_who_reaches_it()
    {
        var m = Manifests.Render("cpu-demo");
        m.Named<V1Deployment>("gateway")!.Spec.Template.Spec.Containers.Single().Ports.Add(new V1ContainerPort { Name = "debug", ContainerPort = 5005 });
        m.Named<V1NetworkPolicy>("gateway")!.Spec.Ingress.Add(new V1NetworkPolicyIngressRule { Ports = [new V1NetworkPolicyPort { Port = 5005 }] });
        Assert.Contains("gateway: port 5005 (debug): an internal port with no entry in NetworkPolicyRules.InternalPorts (say which pods must reach it).", Violations(m));
    }
}
