using k8s.Models;
using Xunit;

namespace ProxyOrleans.Deploy.Tests;

/// <summary>Every overlay renders with kubectl's kustomize, passes the Kubernetes schemas and the project's rules.</summary>
public class KustomizeTests
{
    public static TheoryData<string> Overlays() => new(Manifests.Overlays());

    [Fact]
    public void Both_overlays_exist()
    {
        Assert.Contains("cpu-demo", Manifests.Overlays());
        Assert.Contains("gpu-production", Manifests.Overlays());
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Overlay_renders_and_matches_the_kubernetes_schemas(string overlay)
    {
        var m = Manifests.Render(overlay); // strict typed load: unknown fields throw here
        var file = Path.Combine(Path.GetTempPath(), $"proxyorleans-{overlay}-{Environment.ProcessId}.yaml");
        File.WriteAllText(file, m.Yaml);
        try
        {
            var r = Repo.RunLinter("k8s-validate.mjs", file);
            Assert.True(r.ExitCode == 0, $"{overlay} does not match the Kubernetes schemas:\n{r.Stdout}{r.Stderr}");
            Assert.Contains($"\"objects\":{m.Objects.Count},", r.Stdout);
        }
        finally { File.Delete(file); }
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Overlay_follows_the_project_rules(string overlay)
    {
        var m = Manifests.Render(overlay);
        var violations = ManifestRules.Check(m, ManifestRules.GpuFor(overlay));
        Assert.True(violations.Count == 0, $"{overlay}:\n  " + string.Join("\n  ", violations));
        // Kinds the deployment is made of.
        foreach (var kind in new[] { typeof(V1Namespace), typeof(V1Deployment), typeof(V1Service), typeof(V1ConfigMap),
                     typeof(V1Secret), typeof(V1PodDisruptionBudget), typeof(V2HorizontalPodAutoscaler), typeof(V1NetworkPolicy) })
            Assert.Contains(m.Objects, o => o.GetType() == kind);
    }

    [Fact]
    public void Gpu_production_runs_two_replicas_per_role_and_cpu_demo_one()
    {
        foreach (var (overlay, replicas) in new[] { ("gpu-production", 2), ("cpu-demo", 1) })
        {
            var roles = Manifests.Render(overlay).Workloads().Where(w => w.Labels.ContainsKey(ManifestRules.RoleLabel)).ToList();
            Assert.Equal(3, roles.Count);
            Assert.All(roles, w => Assert.Equal(replicas, w.Replicas));
        }
    }

    /// <summary>The rules are not vacuous: breaking a rendered overlay makes them report exactly what broke.</summary>
    [Fact]
    public void Rules_report_broken_manifests()
    {
        var demo = Manifests.Render("cpu-demo");
        Assert.Contains(ManifestRules.Check(demo, ManifestRules.GpuExpectation.Required), x => x.Contains("requests no nvidia.com/gpu"));
        Assert.Contains(ManifestRules.Check(Manifests.Render("gpu-production"), ManifestRules.GpuExpectation.Forbidden),
            x => x.Contains("requests nvidia.com/gpu in a CPU overlay"));

        var silo = demo.Named<V1Deployment>("silo-expert")!.Spec.Template.Spec;
        var c = silo.Containers.Single();
        c.ReadinessProbe = null;
        c.Resources.Limits.Remove("memory");
        c.Env = c.Env.Where(e => e.Name is not ("POD_IP" or "ProxyOrleans__Models__0__Name")).ToList();
        silo.SecurityContext.RunAsNonRoot = null;
        demo.Named<V1NetworkPolicy>("silo")!.Spec.Ingress[0].Ports.RemoveAt(0);
        // A gateway drain longer than its pod's grace period: the kubelet would SIGKILL streams the drain still serves.
        demo.Named<V1Deployment>("gateway")!.Spec.Template.Spec.Containers.Single().Env
            .Single(e => e.Name == "ProxyOrleans__Gateway__DrainGraceSeconds").Value = "60";
        var v = ManifestRules.Check(demo, ManifestRules.GpuExpectation.Forbidden);
        Assert.Contains("gateway: terminationGracePeriodSeconds 45 is shorter than preStop (5 s) + shutdown (70 s) + 5.", v);
        Assert.Contains("silo-expert/silo has no readinessProbe.", v);
        Assert.Contains("silo-expert/silo has no memory limit.", v);
        Assert.Contains("silo-expert/silo: runAsNonRoot is not true.", v);
        Assert.Contains(v, x => x.StartsWith("silo-expert: POD_IP"));
        Assert.Contains(v, x => x.StartsWith("silo-expert: no ProxyOrleans__Models__0__Name"));
        Assert.Contains(v, x => x.Contains("names a model no silo role hosts"));
        Assert.Contains("silo-base: no NetworkPolicy ingress rule allows ProxyOrleans__SiloPort 11111.", v);
    }

    [Fact]
    public void Schema_validator_rejects_invalid_objects()
    {
        var file = Path.Combine(Path.GetTempPath(), $"proxyorleans-bad-{Environment.ProcessId}.yaml");
        File.WriteAllText(file, """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: bad}
            spec:
              selector: {matchLabels: {a: b}}
              template:
                spec:
                  containers:
                    - name: c
                      image: x:1
                      ports: [{containerPort: "8080"}]
            ---
            apiVersion: apps/v1
            kind: Deploymnet
            metadata: {name: typo}
            spec: {}
            """);
        try
        {
            var r = Repo.RunLinter("k8s-validate.mjs", file);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("containerPort must be integer", r.Stdout);
            Assert.Contains("no schema for apps/v1 Deploymnet", r.Stdout);
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void Strict_loading_rejects_fields_the_api_does_not_know()
    {
        var ex = Record.Exception(() => new Manifests("""
            apiVersion: v1
            kind: Pod
            metadata: {name: p}
            spec:
              containers:
                - name: c
                  image: x:1
                  readinessProbes: {}
            """));
        Assert.NotNull(ex);
        Assert.Contains("readinessProbes", ex.ToString());
    }

    /// <summary>The runbook's demo key is the one whose hash the cpu-demo tenants Secret holds.</summary>
    [Fact]
    public void Demo_tenant_key_is_the_documented_one()
    {
        var secret = Manifests.Render("cpu-demo").All<V1Secret>().Single(s => s.Metadata.Name.StartsWith("proxyorleans-tenants"));
        var json = System.Text.Encoding.UTF8.GetString(secret.Data["tenants.json"]);
        Assert.Contains(ManifestRules.Sha256Hex("sk-proxyorleans-demo"), json);
        Assert.Contains("sk-proxyorleans-demo", File.ReadAllText(Repo.PathOf("deploy", "k8s", "README.md")));
    }
}
