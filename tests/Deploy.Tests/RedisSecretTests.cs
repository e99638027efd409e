using k8s.Models;
using Microsoft.Extensions.Configuration;
using ProxyOrleans.Client.Benchmarks;
using ProxyOrleans.Gateway;
using StackExchange.Redis;
using Xunit;

namespace ProxyOrleans.Deploy.Tests;

/// <summary>Redis's password lives only in a Secret created on the cluster; silos and gateways authenticate with it.</summary>
public class RedisSecretTests
{
    public static TheoryData<string> Overlays() => new(Manifests.Overlays());

    static List<string> Violations(Manifests m)
    {
        var v = new List<string>();
        RedisSecretRules.Check(m, v);
        return v;
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Redis_requires_the_password_every_silo_and_gateway_reads_from_the_same_secret(string overlay)
    {
        var m = Manifests.Render(overlay);
        var v = Violations(m);
        Assert.True(v.Count == 0, $"{overlay}:\n  " + string.Join("\n  ", v));
        var redis = m.Named<V1Deployment>("redis")!.Spec.Template.Spec.Containers.Single();
        Assert.Equal("secretKeyRef:proxyorleans-redis/password", m.EffectiveEnv(redis)["REDIS_PASSWORD"]);
        Assert.Equal("secretKeyRef:proxyorleans-redis/password", m.EffectiveEnv(redis)["REDISCLI_AUTH"]); // the readiness probe's redis-cli
        foreach (var name in new[] { "silo-base", "silo-expert", "silo-anti-expert", "gateway" })
        {
            var env = m.EffectiveEnv(m.Named<V1Deployment>(name)!.Spec.Template.Spec.Containers[0]);
            Assert.Equal("secretKeyRef:proxyorleans-redis/password", env[RedisSecretRules.PasswordEnv]);
            Assert.DoesNotContain("password", env["ProxyOrleans__Redis"], StringComparison.OrdinalIgnoreCase);
        }
        Assert.DoesNotContain(m.All<V1Secret>(), s => s.Metadata.Name.StartsWith("proxyorleans-redis"));
    }

    [Fact]
    public void A_literal_or_missing_password_is_reported()
    {
        var m = Manifests.Render("cpu-demo");
        var redis = m.Named<V1Deployment>("redis")!.Spec.Template.Spec.Containers.Single();
        redis.Args[redis.Args.IndexOf("--requirepass") + 1] = "hunter2";
        m.Named<V1ConfigMap>(m.All<V1ConfigMap>().Single(c => c.Metadata.Name.StartsWith("proxyorleans-cluster")).Metadata.Name)!
            .Data["ProxyOrleans__Redis"] = "redis:6379,password=hunter2";
        var gateway = m.Named<V1Deployment>("gateway")!.Spec.Template.Spec.Containers.Single();
        gateway.Env.Single(e => e.Name == RedisSecretRules.PasswordEnv).ValueFrom = null;
        gateway.Env.Single(e => e.Name == RedisSecretRules.PasswordEnv).Value = "hunter2";
        var silo = m.Named<V1Deployment>("silo-expert")!.Spec.Template.Spec.Containers.Single();
        silo.Env.Remove(silo.Env.Single(e => e.Name == RedisSecretRules.PasswordEnv));
        var v = Violations(m);
        Assert.Contains("redis: --requirepass is given a literal ('hunter2'), not $(VAR) from a Secret.", v);
        Assert.Contains(v, x => x.StartsWith("ConfigMap proxyorleans-cluster-") && x.EndsWith(": ProxyOrleans__Redis carries a password; use a Secret."));
        Assert.Contains("gateway/gateway: env ProxyOrleans__RedisPassword carries a literal password; use a secretKeyRef.", v);
        Assert.Contains("silo-expert: no ProxyOrleans__RedisPassword: it cannot authenticate to Redis.", v);

        // No --requirepass at all; the Secret committed as part of the overlay.
        m = Manifests.Render("gpu-production");
        redis = m.Named<V1Deployment>("redis")!.Spec.Template.Spec.Containers.Single();
        redis.Args = redis.Args.Where(a => a is not ("--requirepass" or "$(REDIS_PASSWORD)")).ToList();
        Assert.Contains(Violations(m), x => x.StartsWith("redis: redis-server has no --requirepass"));
        m = Manifests.Render("gpu-production");
        ((List<object>)m.Objects).Add(new V1Secret { Metadata = new V1ObjectMeta { Name = "proxyorleans-redis", NamespaceProperty = "proxyorleans" },
            StringData = new Dictionary<string, string> { ["password"] = "hunter2" } });
        Assert.Contains(Violations(m), x => x.StartsWith("Secret proxyorleans-redis is in the rendering"));
    }

    /// <summary>
    /// The connection the silos and gateways build (ProxyOrleans:Redis + ProxyOrleans:RedisPassword) authenticates to a
    /// real redis-server started with --requirepass; without the password, or with a wrong one, Redis refuses it.
    /// </summary>
    [Fact]
    public async Task Clustering_connection_authenticates_to_redis_started_with_requirepass()
    {
        using var redis = RedisProcess.Start(password: "s3cret-" + Guid.NewGuid().ToString("N"));
        Assert.StartsWith("-NOAUTH", redis.Command("PING", authenticate: false));

        static IConfiguration Config(params (string Key, string Value)[] kv) =>
            new ConfigurationBuilder().AddInMemoryCollection(kv.Select(x => new KeyValuePair<string, string?>(x.Key, x.Value))).Build();

        var options = RedisConnection.Options(Config((RedisConnection.Key, redis.ConnectionString), (RedisConnection.PasswordKey, redis.Password!)));
        await using (var ok = await ConnectionMultiplexer.ConnectAsync(options))
        {
            await ok.GetDatabase().StringSetAsync("proxyorleans-auth-check", "1");
            Assert.Equal("1", (string?)await ok.GetDatabase().StringGetAsync("proxyorleans-auth-check"));
        }
        // The StackExchange.Redis form, password in the connection string, works as well.
        var inline = RedisConnection.Options(Config((RedisConnection.Key, $"{redis.ConnectionString},password={redis.Password}")));
        await using (var ok = await ConnectionMultiplexer.ConnectAsync(inline))
            Assert.True((await ok.GetDatabase().PingAsync()) >= TimeSpan.Zero);

        foreach (var wrong in new[] { Config((RedisConnection.Key, redis.ConnectionString)),
                     Config((RedisConnection.Key, redis.ConnectionString), (RedisConnection.PasswordKey, "wrong")) })
        {
            var o = RedisConnection.Options(wrong);
            o.AbortOnConnectFail = true;
            o.ConnectTimeout = 3000;
            var e = await Assert.ThrowsAnyAsync<RedisException>(async () =>
            {
                await using var c = await ConnectionMultiplexer.ConnectAsync(o);
                await c.GetDatabase().PingAsync();
            });
            Assert.Contains("auth", e.Message, StringComparison.OrdinalIgnoreCase);
        }
    }

    [Fact]
    public void Bad_redis_settings_are_refused_with_what_to_do()
    {
        static string Error(params (string Key, string Value)[] kv) => Assert.Throws<InvalidOperationException>(() => RedisConnection.Options(
            new ConfigurationBuilder().AddInMemoryCollection(kv.Select(x => new KeyValuePair<string, string?>(x.Key, x.Value))).Build())).Message;
        Assert.Contains("ProxyOrleans:Redis (a connection string, e.g. redis:6379) is not set", Error());
        Assert.Contains("give the password in one place", Error((RedisConnection.Key, "redis:6379,password=a"), (RedisConnection.PasswordKey, "b")));
        Assert.Contains("names no host:port", Error((RedisConnection.Key, "password=a")));
    }
}
