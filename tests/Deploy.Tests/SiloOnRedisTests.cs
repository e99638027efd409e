using System.Net;
using k8s.Models;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Runtime;
using ProxyOrleans.Abstractions;
using ProxyOrleans.Client.Benchmarks;
using ProxyOrleans.TestSupport;
using StackExchange.Redis;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Deploy.Tests;

/// <summary>
/// The three model-role silos and the gateway, each started exactly as the cpu-demo manifests start it (the
/// rendered Deployment's environment, ConfigMaps and the tenants Secret resolved, no arguments), form a cluster
/// through a real redis-server: an Orleans client that finds them through Redis sees every silo under its pod
/// name and runs a proxy-tuned generation across them, and the gateway serves the configured combination to
/// the demo tenant. Only what a node would differ in is replaced: the pod name and IP (downward API), the Redis
/// address, the ports (free loopback ports: tests share this machine), the model directories (tiny random
/// models instead of the demo weights), the Secret's mount path and the Redis password (a Secret created on the
/// cluster, so the test makes one up and starts redis-server with --requirepass, as the Redis Deployment does).
/// </summary>
[Trait("Category", "Cluster")]
public class SiloOnRedisTests(ITestOutputHelper log)
{
    sealed record Node(string Role, string PodName, string Model, int SiloPort, int GatewayPort, int HttpPort, HostProcess Process);

    [Fact]
    public async Task Silos_and_gateway_started_as_the_manifests_start_them_form_a_redis_cluster_and_serve()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        void Phase(string what) => log.WriteLine($"{clock.Elapsed.TotalSeconds,6:F1} s  {what}");
        var manifests = Manifests.Render("cpu-demo");
        using var redis = RedisProcess.Start(password: "deploy-test-" + Guid.NewGuid().ToString("N"));
        Assert.StartsWith("-NOAUTH", redis.Command("KEYS *", authenticate: false)); // nobody without the password
        var work = Path.Combine(Path.GetTempPath(), "proxyorleans-deploy-" + Guid.NewGuid().ToString("N")[..8]);
        var nodes = new List<Node>();
        string clusterId = "", serviceId = "";
        try
        {
            foreach (var role in ManifestRules.ModelRoles)
            {
                var deployment = manifests.Named<V1Deployment>("silo-" + role)!;
                var container = deployment.Spec.Template.Spec.Containers.Single(c => c.Name == "silo");
                Assert.Null(container.Args);    // the manifests start the silo without arguments...
                Assert.Null(container.Command); // ...through the image's entry point
                var env = manifests.EffectiveEnv(container);
                var model = env["ProxyOrleans__Models__0__Name"];
                var node = new Node(role, $"silo-{role}-5d8c7b9f4-{role.Length:x}q2zt", model,
                    LoopbackPorts.Next(), LoopbackPorts.Next(), LoopbackPorts.Next(), null!);
                clusterId = env["ProxyOrleans__ClusterId"];
                serviceId = env["ProxyOrleans__ServiceId"];

                // Downward API, as the kubelet fills it.
                Assert.Equal("fieldRef:metadata.name", env["POD_NAME"]);
                Assert.Equal("fieldRef:status.podIP", env["POD_IP"]);
                env["POD_NAME"] = node.PodName;
                env["POD_IP"] = "127.0.0.1";
                // This machine instead of the cluster: Redis address, free ports, tiny weights at the manifest's model name.
                Assert.Equal("redis", env["ProxyOrleans__Clustering"]);
                env["ProxyOrleans__Redis"] = redis.ConnectionString;
                Assert.Equal("secretKeyRef:proxyorleans-redis/password", env[RedisSecretRules.PasswordEnv]);
                env[RedisSecretRules.PasswordEnv] = redis.Password!;
                env["ProxyOrleans__SiloPort"] = node.SiloPort.ToString();
                env["ProxyOrleans__GatewayPort"] = node.GatewayPort.ToString();
                env["ProxyOrleans__HttpPort"] = node.HttpPort.ToString();
                env["ProxyOrleans__Models__0__Path"] = TinyModel.Save(Path.Combine(work, model), seed: nodes.Count + 1);
                env["ProxyOrleans__Threads"] = "1";
                nodes.Add(node with { Process = HostProcess.FromBuild(node.PodName, "Silo", env) });
            }

            Phase("three silo processes started (redis-server on " + redis.Port + ")");
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            await WaitFor("every silo's /healthz to answer 200", TimeSpan.FromSeconds(240), nodes, async () =>
            {
                foreach (var n in nodes)
                    if (!await Ok(http, $"http://127.0.0.1:{n.HttpPort}/healthz")) return false;
                return true;
            });

            Phase("all /healthz answer");
            // A client that knows only Redis finds the silos through the membership table.
            using var host = Host.CreateDefaultBuilder()
                .UseOrleansClient(c => c
                    .UseRedisClustering(o => { o.ConfigurationOptions = ConfigurationOptions.Parse(redis.ConnectionString); o.ConfigurationOptions.Password = redis.Password; })
                    .Configure<ClusterOptions>(o => { o.ClusterId = clusterId; o.ServiceId = serviceId; }))
                .Build();
            await host.StartAsync();
            var client = host.Services.GetRequiredService<IClusterClient>();

            var management = client.GetGrain<IManagementGrain>(0);
            MembershipEntry[] hosts = [];
            await WaitFor("all three silos to be Active in the Redis membership table", TimeSpan.FromSeconds(120), nodes, async () =>
            {
                hosts = await management.GetDetailedHosts(onlyActive: true);
                return hosts.Length == nodes.Count;
            });
            Phase("client connected through Redis sees three Active silos");
            foreach (var n in nodes)
            {
                var entry = Assert.Single(hosts, h => h.SiloName == n.PodName); // POD_NAME is the silo name
                Assert.Equal(IPAddress.Loopback, entry.SiloAddress.Endpoint.Address); // POD_IP is the advertised address
                Assert.Equal(n.SiloPort, entry.SiloAddress.Endpoint.Port);
                Assert.Equal(SiloStatus.Active, entry.Status);
            }
            Assert.Contains(clusterId, redis.Command("KEYS *")); // the membership table lives in this Redis

            // Each silo advertises the model of its role; every model grain answers from the weights at its path.
            var directory = client.GetGrain<IModelDirectoryGrain>(DirectoryKeys.Default);
            ClusterModels models = null!;
            await WaitFor("the cluster to report every model hosted and the combination ready", TimeSpan.FromSeconds(60), nodes, async () =>
            {
                models = await directory.GetModels();
                return models.Ready && models.Models.Length == nodes.Count;
            });
            foreach (var n in nodes)
            {
                var hosted = Assert.Single(models.Models, m => m.Name == n.Model);
                var address = Assert.Single(hosts, h => h.SiloName == n.PodName).SiloAddress.ToString();
                Assert.Equal([address], hosted.Silos);
                var info = await client.GetGrain<IModelGrain>(n.Model).GetInfo();
                Assert.Equal(n.Model, info.Name);
                Assert.Equal(TinyModel.VocabSize, info.VocabSize);
            }

            Phase("models advertised, model grains answer");
            // The combination from the combinations ConfigMap runs across the three silos.
            var combination = Assert.Single(models.Combinations);
            var spec = await directory.Resolve(combination.Name);
            Assert.NotNull(spec);
            var request = new GenerationRequest
            {
                Combination = spec!, Prompt = "hello", ExpertChatTemplate = false,
                Sampling = new SamplingSpec { Temperature = 0, MaxNewTokens = 6, StopAtEos = false },
            };
            var events = new List<TokenEvent>();
            await foreach (var e in GenerationClient.StreamAsync(client, request, "deploy-test-1")) events.Add(e);
            var last = events[^1];
            Assert.True(last.Finish == FinishKind.Length, $"finish {last.Finish}: {last.Error}");
            Assert.Equal(6, events.Count(e => e.TokenId >= 0));
            Phase("generation done");
            log.WriteLine($"{combination.Name}: {string.Join(' ', events.Where(e => e.TokenId >= 0).Select(e => e.TokenId))}");

            foreach (var n in nodes)
                Assert.True(await Ok(http, $"http://127.0.0.1:{n.HttpPort}/readyz"), $"{n.PodName}: /readyz is not 200.\n{n.Process.Tail()}");

            await host.StopAsync();

            // The gateway, as its Deployment starts it; the tenants Secret "mounted" in a temp folder.
            var gwContainer = manifests.Named<V1Deployment>("gateway")!.Spec.Template.Spec.Containers.Single();
            var gwEnv = manifests.EffectiveEnv(gwContainer);
            var tenantsFile = gwEnv["ProxyOrleans__TenantsFile"];
            var secretName = gwContainer.VolumeMounts.Single(v => tenantsFile.StartsWith(v.MountPath + "/")).Name;
            var secret = manifests.Named<V1Secret>(manifests.Named<V1Deployment>("gateway")!.Spec.Template.Spec.Volumes.Single(v => v.Name == secretName).Secret.SecretName)!;
            Directory.CreateDirectory(Path.Combine(work, "tenants"));
            gwEnv["ProxyOrleans__TenantsFile"] = Path.Combine(work, "tenants", Path.GetFileName(tenantsFile));
            File.WriteAllBytes(gwEnv["ProxyOrleans__TenantsFile"], secret.Data[Path.GetFileName(tenantsFile)]);
            gwEnv["POD_NAME"] = "gateway-6f9d8c7b5-x2x9k";
            gwEnv["ProxyOrleans__Redis"] = redis.ConnectionString;
            Assert.Equal("secretKeyRef:proxyorleans-redis/password", gwEnv[RedisSecretRules.PasswordEnv]);
            gwEnv[RedisSecretRules.PasswordEnv] = redis.Password!;
            int gwPort = LoopbackPorts.Next();
            Assert.Equal("8080", gwEnv["ASPNETCORE_HTTP_PORTS"]);
            gwEnv["ASPNETCORE_HTTP_PORTS"] = gwPort.ToString();
            var gateway = new Node("gateway", gwEnv["POD_NAME"], "", 0, 0, gwPort, HostProcess.FromBuild(gwEnv["POD_NAME"], "Gateway", gwEnv));
            nodes.Add(gateway);
            var api = $"http://127.0.0.1:{gwPort}";
            await WaitFor("the gateway's /readyz to answer 200", TimeSpan.FromSeconds(180), nodes, () => Ok(http, api + "/readyz"));
            Phase("gateway ready");

            using (var anonymous = await http.GetAsync(api + "/v1/models"))
                Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
            using var tenant = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
            tenant.DefaultRequestHeaders.Authorization = new("Bearer", "sk-proxyorleans-demo"); // the runbook's demo key
            using (var list = await tenant.GetAsync(api + "/v1/models"))
            {
                var body = await list.Content.ReadAsStringAsync();
                Assert.True(list.StatusCode == HttpStatusCode.OK, body);
                Assert.Contains($"\"{combination.Name}\"", body);
            }
            using (var completion = await tenant.PostAsync(api + "/v1/completions", new StringContent(
                       $$"""{"model":"{{combination.Name}}","prompt":"hello","max_tokens":6,"temperature":0}""", System.Text.Encoding.UTF8, "application/json")))
            {
                var body = await completion.Content.ReadAsStringAsync();
                Assert.True(completion.StatusCode == HttpStatusCode.OK, body);
                using var json = System.Text.Json.JsonDocument.Parse(body);
                Assert.Equal(6, json.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
                Assert.Equal("length", json.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
            }
            Phase("gateway served /v1/models and /v1/completions to the demo tenant");

            // /metrics on the HTTP ports the NetworkPolicies leave open names no tenant (the demo tenant is "demo").
            foreach (var n in nodes)
            {
                var metrics = await http.GetStringAsync($"http://127.0.0.1:{n.HttpPort}/metrics");
                Assert.Contains(n.Role == "gateway" ? "proxyorleans_gateway_completion_tokens_total" : "proxyorleans_model_sessions", metrics);
                Assert.DoesNotContain("tenant=", metrics);
                Assert.DoesNotContain("\"demo\"", metrics);
            }

            // The kubelet stops a pod with SIGTERM: each host drains and exits well inside its grace period.
            var stopped = nodes.Select(n => Task.Run(() => n.Process.Terminate(TimeSpan.FromSeconds(45)))).ToList();
            for (int i = 0; i < nodes.Count; i++)
            {
                var n = nodes[i];
                Assert.True(await stopped[i], $"{n.PodName} did not stop within 45 s of SIGTERM.\n{n.Process.Tail()}");
                Assert.True(n.Process.ExitCode == 0, $"{n.PodName} exited with {n.Process.ExitCode} after SIGTERM.\n{n.Process.Tail()}");
            }
            Phase("gateway and silos stopped on SIGTERM with exit code 0");
        }
        catch
        {
            foreach (var n in nodes) log.WriteLine(n.Process.Tail());
            throw;
        }
        finally
        {
            foreach (var n in nodes) n.Process.Dispose();
            try { Directory.Delete(work, recursive: true); } catch (IOException) { }
        }
    }

    static async Task<bool> Ok(HttpClient http, string url)
    {
        try { return (await http.GetAsync(url)).StatusCode == HttpStatusCode.OK; }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { return false; }
    }

    static async Task WaitFor(string what, TimeSpan timeout, List<Node> nodes, Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (nodes.FirstOrDefault(n => n.Process.HasExited) is { } dead)
                throw new Xunit.Sdk.XunitException($"{dead.PodName} exited with {dead.Process.ExitCode} while waiting for {what}.\n{dead.Process.Tail()}");
            try { if (await condition()) return; }
            catch (Exception e) when (DateTime.UtcNow < deadline && e is not Xunit.Sdk.XunitException) { }
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"Timed out after {timeout.TotalSeconds:F0} s waiting for {what}.\n" + string.Join("\n", nodes.Select(n => n.Process.Tail(15))));
            await Task.Delay(250);
        }
    }
}
