using Microsoft.Extensions.Configuration;
using ProxyOrleans.Abstractions;

namespace ProxyOrleans.Silo;

/// <summary>The main job's demo: the same question answered by the base model alone and proxy-tuned, side by side.</summary>
public static class Demo
{
    /// <summary>A question about the demo models' generated world (docs/evaluation.md); sent as a chat message.</summary>
    public const string Prompt = "Where does Farid Keller live?";

    public static async Task RunAsync(IGrainFactory grains, IConfiguration config, CancellationToken ct)
    {
        try
        {
            var directory = grains.GetGrain<IModelDirectoryGrain>(DirectoryKeys.Default);
            var models = await directory.GetModels();
            var combo = models.Combinations.FirstOrDefault(c => c.Ready);
            if (combo is null)
            {
                Console.WriteLine($"Demo skipped: no configured combination is fully hosted (models: {string.Join(", ", models.Models.Select(m => m.Name))}).");
                return;
            }
            string prompt = config["ProxyOrleans:DemoPrompt"] ?? Prompt;
            var sampling = new SamplingSpec { Temperature = 0, MaxNewTokens = 32 };
            async Task<string> Run(CombinationSpec spec)
            {
                var text = new System.Text.StringBuilder();
                // As a chat turn: the expert sees its chat template, the base and anti-expert the plain question.
                var request = new GenerationRequest { Combination = spec, Messages = [new ChatMessageSpec("user", prompt)], Sampling = sampling, TenantId = "demo" };
                await foreach (var ev in GenerationClient.StreamAsync(grains, request, "demo-" + Guid.NewGuid().ToString("N"), ct))
                    text.Append(ev.Text);
                return text.ToString();
            }
            var baseOnly = Run(CombinationSpec.BaseOnly(combo.Spec.Base));
            var proxy = Run(combo.Spec);
            await Task.WhenAll(baseOnly, proxy);
            Console.WriteLine();
            Console.WriteLine($"Prompt: {prompt.Replace("\n", "\\n")}");
            Console.WriteLine($"--- {combo.Spec.Base} alone ---");
            Console.WriteLine(baseOnly.Result.Trim());
            Console.WriteLine($"--- {combo.Name}: {combo.Spec.Base} + {combo.Spec.Alpha}·({string.Join(" + ", combo.Spec.Experts.Select(e => $"{e.Expert} − {e.AntiExpert}"))}) ---");
            Console.WriteLine(proxy.Result.Trim());
            Console.WriteLine();
        }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            Console.Error.WriteLine("Demo failed: " + e.Message);
        }
    }
}
