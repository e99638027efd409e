using System.Text.RegularExpressions;
using k8s.Models;

namespace ProxyOrleans.Deploy.Tests;

/// <summary>
/// Redis runs with a password that only a Secret holds: redis-server gets `--requirepass $(VAR)` with VAR from a
/// secretKeyRef, every silo and gateway reads the same Secret key into ProxyOrleans__RedisPassword, the Secret itself
/// is not part of the rendering (created on the cluster, never committed), and no manifest carries a literal password.
/// </summary>
public static partial class RedisSecretRules
{
    public const string PasswordEnv = "ProxyOrleans__RedisPassword";

    public static void Check(Manifests m, List<string> v)
    {
        var redis = m.Workloads().Where(w => w.Template.Metadata.Labels?.TryGetValue(NetworkPolicyRules.NameLabel, out var n) == true && n == "redis").ToList();
        if (redis.Count != 1) { v.Add($"expected one Redis workload, found {redis.Count}."); return; }
        var rc = redis[0].Template.Spec.Containers.Single();
        var args = (rc.Command ?? []).Concat(rc.Args ?? []).ToList();
        var at = args.IndexOf("--requirepass");
        string? secretKey = null;
        if (at < 0 || at + 1 >= args.Count) v.Add("redis: redis-server has no --requirepass: anyone who reaches port 6379 can rewrite the membership table.");
        else if (VarRef().Match(args[at + 1]) is not { Success: true } var)
            v.Add($"redis: --requirepass is given a literal ('{args[at + 1]}'), not $(VAR) from a Secret.");
        else if (m.EffectiveEnv(rc).GetValueOrDefault(var.Groups[1].Value) is not { } source || !source.StartsWith("secretKeyRef:", StringComparison.Ordinal))
            v.Add($"redis: --requirepass $({var.Groups[1].Value}) does not come from a Secret (secretKeyRef).");
        else secretKey = source;

        // Silos and gateways: the same Secret key, and no password in the connection string itself.
        foreach (var (name, _, _, t) in m.Workloads().Where(w => w.Name != redis[0].Name))
            foreach (var c in t.Spec.Containers.Where(c => c.Name is "silo" or "gateway"))
            {
                var env = m.EffectiveEnv(c);
                if (env.GetValueOrDefault(PasswordEnv) is not { } pw) v.Add($"{name}: no {PasswordEnv}: it cannot authenticate to Redis.");
                else if (secretKey is not null && pw != secretKey) v.Add($"{name}: {PasswordEnv} is '{pw}', not Redis's {secretKey}.");
            }

        if (secretKey is not null)
        {
            var secretName = secretKey["secretKeyRef:".Length..].Split('/')[0];
            if (m.Named<V1Secret>(secretName) is not null)
                v.Add($"Secret {secretName} is in the rendering: its password is committed to the repository. Create it on the cluster instead (deploy/k8s/README.md).");
        }

        // No literal password anywhere: ConfigMaps, env values, arguments.
        foreach (var cm in m.All<V1ConfigMap>())
            foreach (var (k, value) in cm.Data ?? new Dictionary<string, string>())
                if (LooksLikePassword(k, value)) v.Add($"ConfigMap {cm.Metadata.Name}: {k} carries a password; use a Secret.");
        foreach (var (name, _, _, t) in m.Workloads())
            foreach (var c in t.Spec.Containers.Concat(t.Spec.InitContainers ?? []))
            {
                foreach (var e in c.Env ?? [])
                    if (e.Value is { } value && LooksLikePassword(e.Name, value)) v.Add($"{name}/{c.Name}: env {e.Name} carries a literal password; use a secretKeyRef.");
                foreach (var a in (c.Command ?? []).Concat(c.Args ?? []))
                    if (PasswordOption().IsMatch(a)) v.Add($"{name}/{c.Name}: argument '{a}' carries a literal password.");
            }
    }

    static bool LooksLikePassword(string name, string value) =>
        (name.Contains("password", StringComparison.OrdinalIgnoreCase) || name.Contains("REDISCLI_AUTH", StringComparison.Ordinal)) && value.Length > 0
        || PasswordOption().IsMatch(value);

    /// <summary>A StackExchange.Redis or URL-style password given inline (",password=...", "redis://:pw@host").</summary>
    [GeneratedRegex(@"password\s*=\s*[^\s,$]|redis://[^/@\s]*:[^/@\s]+@", RegexOptions.IgnoreCase)]
    private static partial Regex PasswordOption();

    [GeneratedRegex(@"^\$\(([A-Za-z_][A-Za-z0-9_]*)\)$")]
    private static partial Regex VarRef();
}
