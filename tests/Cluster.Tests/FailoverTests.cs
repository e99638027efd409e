using Microsoft.Extensions.DependencyInjection;
using ProxyOrleans.Abstractions;
using Xunit;
using Xunit.Abstractions;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>Silos die mid-generation; the output is still exactly the single-process output.</summary>
public sealed class FailoverTests(ITestOutputHelper output)
{
    private const string Prompt = "Once upon a time";
    private const int Tokens = 30;

    [Fact]
    public async Task KillingTheBaseSiloMidGenerationYieldsIdenticalOutput()
    {
        // Two base replicas; the coordinator runs beside one of them (and dies with it): the client resumes on a new
        // coordinator, which prefills the tokens so far on the surviving replica.
        var sw = System.Diagnostics.Stopwatch.StartNew();
        await using var c = await InProcessCluster.StartAsync(TinyTrio.PathOf, [TinyTrio.Base], [TinyTrio.Expert], [TinyTrio.Anti], [TinyTrio.Base]);
        output.WriteLine($"cluster up in {sw.Elapsed.TotalSeconds:F1} s");
        var reference = TinyTrio.Reference(Prompt, Tokens);
        sw.Restart();
        int killed = -1;
        var (tokens, text, events) = await TinyTrio.Collect(GenerationClient.StreamAsync(c.Grains, TinyTrio.Request(Prompt, Tokens), "kill-base"), async ev =>
        {
            if (ev.Step == 8 && killed < 0)
            {
                killed = c.SiloWithSession(TinyTrio.Base);
                Assert.True(killed >= 0);
                output.WriteLine($"killing silo {killed} (base) after step 8");
                await c.Cluster.KillSiloAsync(c.Cluster.Silos[killed]);
            }
        });
        output.WriteLine($"generation with failover took {sw.Elapsed.TotalSeconds:F1} s");
        Assert.True(killed >= 0);
        Assert.Equal(reference.TokenIds, tokens);
        Assert.Equal(reference.Text, text);
        output.WriteLine($"identical after failover; final layout {events[^1].Stats?.Layout}, coordinator {events[^1].Stats?.CoordinatorSilo}");
        // KV accounting back to its baseline on every surviving silo at once: the dead coordinator's sessions (on the
        // expert's and anti-expert's silos) were freed when the resumed attempt opened, not after the 60 s idle timeout.
        await AssertNoKvReservedAsync(c, except: killed);
    }

    [Fact]
    public async Task ACancelReachesTheResumedCoordinatorAfterTheFirstDied()
    {
        // The coordinator dies with its base silo at step 8 and the client resumes on a new coordinator under another
        // key; a cancel by the generation's id (as DELETE /v1/requests sends it) must stop that live one.
        await using var c = await InProcessCluster.StartAsync(TinyTrio.PathOf, [TinyTrio.Base], [TinyTrio.Expert], [TinyTrio.Anti], [TinyTrio.Base]);
        var request = TinyTrio.Request(Prompt, 400) with { TenantId = "alice" };
        int killed = -1, cancelledAt = -1;
        var (tokens, _, events) = await TinyTrio.Collect(GenerationClient.StreamAsync(c.Grains, request, "cancel-resumed"), async ev =>
        {
            if (ev.Step == 8 && killed < 0)
            {
                killed = c.SiloWithSession(TinyTrio.Base);
                await c.Cluster.KillSiloAsync(c.Cluster.Silos[killed]);
            }
            if (ev.Step == 20 && cancelledAt < 0)
            {
                cancelledAt = ev.Step;
                await GenerationClient.CancelAllAttemptsAsync(c.Grains, TinyTrio.Base, "cancel-resumed", "alice");
            }
        });
        Assert.True(killed >= 0 && cancelledAt == 20);
        Assert.Equal(FinishKind.Cancelled, events[^1].Finish);
        Assert.True(tokens.Length < 100, $"ran on to {tokens.Length} tokens after the cancel");
        await AssertNoKvReservedAsync(c, except: killed);
    }

    internal static async Task AssertNoKvReservedAsync(InProcessCluster c, int except)
    {
        long Reserved() => Enumerable.Range(0, c.Cluster.Silos.Count).Where(i => i != except)
            .Sum(i => c.Hosted(i).Workers.Sum(w => w.ReservedBytes));
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (Reserved() != 0 && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.Equal(0, Reserved());
    }

    [Theory]
    [InlineData("base")]  // the coordinator dies with it: the client resumes on a new coordinator
    [InlineData("anti")]  // a model silo under a live coordinator: the session is re-prefilled elsewhere
    public async Task SeededSamplingWithTopKTopPAndAStopSurvivesASiloKillExactly(string victim)
    {
        // One stream at a time, so no batch changes between the runs: exact regardless of batch invariance.
        await using var c = await InProcessCluster.StartAsync(TinyTrio.PathOf, [TinyTrio.Base], [TinyTrio.Expert], [TinyTrio.Anti], [victim == "base" ? TinyTrio.Base : TinyTrio.Anti]);
        var sampling = new SamplingSpec { Temperature = 0.8f, TopK = 40, TopP = 0.9f, Seed = 4242, MaxNewTokens = 40, StopAtEos = false, Stop = ["\n\n\n"] };
        var reference = TinyTrio.Reference(Prompt, sampling);
        Assert.NotEqual(TinyTrio.Reference(Prompt, Tokens).Text[..10], reference.Text[..Math.Min(10, reference.Text.Length)]); // really sampled
        var request = TinyTrio.Request(Prompt, 40) with { Sampling = sampling };
        int killed = -1;
        var (tokens, text, _) = await TinyTrio.Collect(GenerationClient.StreamAsync(c.Grains, request, $"sampled-kill-{victim}"), async ev =>
        {
            if (ev.Step == 8 && killed < 0)
            {
                killed = c.SiloWithSession(victim == "base" ? TinyTrio.Base : TinyTrio.Anti);
                await c.Cluster.KillSiloAsync(c.Cluster.Silos[killed]);
            }
        });
        Assert.True(killed >= 0);
        Assert.Equal(reference.TokenIds, tokens);
        Assert.Equal(reference.Text, text);
        await AssertNoKvReservedAsync(c, except: killed);
    }

    [Theory]
    [InlineData("base")]  // the resumed coordinator rebuilds the penalties' counts by replaying the tokens so far
    [InlineData("anti")]  // the live coordinator keeps its counts; only the anti-expert's session is re-prefilled
    public async Task EveryLogitsProcessorSurvivesASiloKillExactly(string victim)
    {
        await using var c = await InProcessCluster.StartAsync(TinyTrio.PathOf, [TinyTrio.Base], [TinyTrio.Expert], [TinyTrio.Anti], [victim == "base" ? TinyTrio.Base : TinyTrio.Anti]);
        var sampling = TinyTrio.EveryProcessor(30);
        var reference = TinyTrio.Reference(Prompt, sampling);
        int killed = -1;
        var (tokens, text, _) = await TinyTrio.Collect(GenerationClient.StreamAsync(c.Grains, TinyTrio.Request(Prompt, 30) with { Sampling = sampling }, $"processors-kill-{victim}"), async ev =>
        {
            if (ev.Step == 10 && killed < 0)
            {
                killed = c.SiloWithSession(victim == "base" ? TinyTrio.Base : TinyTrio.Anti);
                await c.Cluster.KillSiloAsync(c.Cluster.Silos[killed]);
            }
        });
        Assert.True(killed >= 0);
        Assert.Equal(reference.TokenIds, tokens);
        Assert.Equal(reference.Text, text);
    }

    [Fact]
    public async Task KillingAModelSiloUnderALiveCoordinatorReopensTheSessionElsewhere()
    {
        // The coordinator stays alive (beside the only base); the anti-expert's silo dies: the coordinator re-creates
        // that session on the other replica by prefilling the tokens so far, and the output does not change.
        await using var c = await InProcessCluster.StartAsync(TinyTrio.PathOf, [TinyTrio.Base], [TinyTrio.Expert], [TinyTrio.Anti], [TinyTrio.Anti]);
        var reference = TinyTrio.Reference(Prompt, Tokens);
        int killed = -1;
        var (tokens, _, events) = await TinyTrio.Collect(GenerationClient.StreamAsync(c.Grains, TinyTrio.Request(Prompt, Tokens), "kill-anti"), async ev =>
        {
            if (ev.Step == 8 && killed < 0)
            {
                killed = c.SiloWithSession(TinyTrio.Anti);
                output.WriteLine($"killing silo {killed} (anti-expert) after step 8");
                await c.Cluster.KillSiloAsync(c.Cluster.Silos[killed]);
            }
        });
        Assert.Equal(reference.TokenIds, tokens);
        var stats = events[^1].Stats!;
        output.WriteLine($"failovers {stats.Failovers}; coordinator {stats.CoordinatorSilo}");
        Assert.True(stats.Failovers >= 1);
    }
}

/// <summary>A silo stopped gracefully (rolling update) lets the sessions it serves finish before it goes.</summary>
public sealed class DrainTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ADrainingSiloTakesNoNewCoordinatorsOrSessions()
    {
        // Two base replicas (silos 0 and 3): coordinators go beside a base. Silo 3 drains; every new request must be
        // coordinated and served by silo 0 (before, about half the coordinators still went to silo 3).
        await using var c = await InProcessCluster.StartAsync(TinyTrio.PathOf, [TinyTrio.Base], [TinyTrio.Expert], [TinyTrio.Anti], [TinyTrio.Base]);
        const string prompt = "The best way to learn is";
        var reference = TinyTrio.Reference(prompt, 6);
        var draining = c.Cluster.Silos[3].SiloAddress;
        var drain = c.Hosted(3).StoppingAsync(CancellationToken.None);
        var directory = c.Cluster.Silos[0].ServiceProvider.GetRequiredService<ProxyOrleans.Grains.Placement.ModelDirectory>();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!directory.IsDraining(draining) && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.True(directory.IsDraining(draining), "silo 0 never learnt that silo 3 drains");
        for (int i = 0; i < 8; i++)
        {
            var (tokens, _, events) = await TinyTrio.Collect(GenerationClient.StreamAsync(c.Grains, TinyTrio.Request(prompt, 6), $"drain-place-{i}"));
            Assert.Equal(reference.TokenIds, tokens);
            Assert.NotEqual(draining.ToString(), events[^1].Stats!.CoordinatorSilo);
        }
        Assert.Equal(0, c.Hosted(3).Workers.Sum(w => w.Prefills));
        await drain;
    }

    [Fact]
    public async Task PlacementStillAvoidsADrainingSiloAfterTheDrainRegistrysSiloDies()
    {
        // Three silos, each hosting the whole trio. The drain registry's silo is killed while another silo drains: the
        // registry is re-activated elsewhere with an empty list, and the draining silo's watcher must refill it, or
        // placement sends new coordinators (and model sessions) to the draining silo again.
        string[] trio = [TinyTrio.Base, TinyTrio.Expert, TinyTrio.Anti];
        await using var c = await InProcessCluster.StartAsync(TinyTrio.PathOf, trio, trio, trio);
        const string prompt = "The best way to learn is";
        var reference = TinyTrio.Reference(prompt, 6);
        var registry = c.Grains.GetGrain<ProxyOrleans.Grains.Placement.IDrainRegistryGrain>(0);
        var management = c.Grains.GetGrain<IManagementGrain>(0);
        await registry.Draining(); // activates it somewhere
        var silos = c.Cluster.Silos.ToList();
        var registryHost = await management.GetActivationAddress(registry);
        int host = silos.FindIndex(s => s.SiloAddress.Equals(registryHost));
        Assert.True(host >= 0, $"the drain registry's silo {registryHost} is not one of the cluster's");
        int drainingIndex = (host + 1) % 3, survivorIndex = (host + 2) % 3;
        var draining = silos[drainingIndex].SiloAddress;
        var drainingModels = c.Hosted(drainingIndex);
        var survivorDirectory = silos[survivorIndex].ServiceProvider.GetRequiredService<ProxyOrleans.Grains.Placement.ModelDirectory>();
        output.WriteLine($"registry on silo {host}; silo {drainingIndex} drains; silo {survivorIndex} survives");

        var drain = drainingModels.StoppingAsync(CancellationToken.None);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!survivorDirectory.IsDraining(draining) && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.True(survivorDirectory.IsDraining(draining), "the surviving silo never learnt of the drain");

        var killed = System.Diagnostics.Stopwatch.StartNew();
        await c.Cluster.KillSiloAsync(silos[host]);
        // Wait until the registry answers from a silo that is alive (membership declared its old silo dead).
        SiloAddress? newHost = null;
        while (killed.Elapsed < TimeSpan.FromSeconds(60))
        {
            try
            {
                await registry.Draining().WaitAsync(TimeSpan.FromSeconds(3));
                newHost = await management.GetActivationAddress(registry);
                if (newHost is not null && !newHost.Equals(registryHost)) break;
            }
            catch (Exception e) when (e is TimeoutException or OrleansException or SiloUnavailableException) { }
            await Task.Delay(100);
        }
        Assert.True(newHost is not null && !newHost.Equals(registryHost), "the drain registry was not re-activated on a live silo within 60 s");
        output.WriteLine($"registry re-activated on {newHost} {killed.Elapsed.TotalSeconds:F1} s after the kill");
        // Refilled within one watcher interval, and the surviving silo's next poll reads it (three intervals of slack).
        await Task.Delay(3 * ProxyOrleans.Grains.Placement.DrainWatcher.Interval);
        Assert.Contains(draining, await registry.Draining());
        Assert.True(survivorDirectory.IsDraining(draining), "after the registry's silo died the surviving silo no longer knows that the other one drains");

        var refusalsBefore = drainingModels.DrainRefusals;
        for (int i = 0; i < 6; i++)
        {
            var (tokens, _, events) = await TinyTrio.Collect(GenerationClient.StreamAsync(c.Grains, TinyTrio.Request(prompt, 6), $"drain-registry-{i}"));
            Assert.Equal(reference.TokenIds, tokens);
            Assert.NotEqual(draining.ToString(), events[^1].Stats!.CoordinatorSilo);
        }
        Assert.Equal(refusalsBefore, drainingModels.DrainRefusals); // nothing was even tried there
        Assert.Equal(0, drainingModels.Workers.Sum(w => w.Prefills));
        await drain;
    }

    [Fact]
    public async Task APrefillRefusedByADrainMovesToAnotherReplicaAtOnce()
    {
        // Two anti-expert replicas; silo 3 drains (no session there yet). Every request whose anti-expert replica is
        // silo 3 is refused there at open and must go to silo 2 at once, not retry silo 3 until its attempts run out.
        await using var c = await InProcessCluster.StartAsync(TinyTrio.PathOf, [TinyTrio.Base], [TinyTrio.Expert], [TinyTrio.Anti], [TinyTrio.Anti]);
        const string prompt = "The best way to learn is";
        var reference = TinyTrio.Reference(prompt, 10);
        // Not announced to the cluster: the window before the other silos learn of the drain, when only the refusal helps.
        c.Hosted(3).AnnounceDrain = null;
        var drain = c.Hosted(3).StoppingAsync(CancellationToken.None);
        Assert.True(c.Hosted(3).Draining);
        for (int i = 0; i < 6; i++)
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var (tokens, _, _) = await TinyTrio.Collect(GenerationClient.StreamAsync(c.Grains, TinyTrio.Request(prompt, 10), $"drain-move-{i}"));
            output.WriteLine($"request {i}: {sw.Elapsed.TotalMilliseconds:F0} ms, refusals so far {c.Hosted(3).DrainRefusals}");
            Assert.Equal(reference.TokenIds, tokens);
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(3), $"request {i} took {sw.Elapsed}");
        }
        Assert.True(c.Hosted(3).DrainRefusals > 0, "no request was routed to the draining replica: pick other ids");
        await drain;
    }

    [Fact]
    public async Task AStoppingSiloFinishesItsRunningSessionsFirst()
    {
        await using var c = await InProcessCluster.StartAsync(TinyTrio.PathOf, [TinyTrio.Base], [TinyTrio.Expert], [TinyTrio.Anti], [TinyTrio.Anti]);
        const string prompt = "The best way to learn is";
        var reference = TinyTrio.Reference(prompt, 40);
        Task? stopping = null;
        int draining = -1;
        var (tokens, _, events) = await TinyTrio.Collect(GenerationClient.StreamAsync(c.Grains, TinyTrio.Request(prompt, 40), "drain-1"), ev =>
        {
            if (ev.Step == 5 && stopping is null)
            {
                draining = c.SiloWithSession(TinyTrio.Anti);
                output.WriteLine($"stopping silo {draining} (anti-expert in use) gracefully after step 5");
                stopping = c.Cluster.StopSiloAsync(c.Cluster.Silos[draining]); // not awaited: the generation must go on
            }
            return Task.CompletedTask;
        });
        Assert.NotNull(stopping);
        Assert.Equal(reference.TokenIds, tokens);
        Assert.Equal(0, events[^1].Stats!.Failovers); // finished where it was: no hand-off needed
        Assert.True(c.Hosted(draining).Draining);
        await stopping!.WaitAsync(TimeSpan.FromSeconds(60));
    }
}
