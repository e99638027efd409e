using Microsoft.Extensions.Configuration;
using ProxyOrleans.Abstractions;

namespace ProxyOrleans.Silo;

/// <summary>The main job's demo: the same questions answered by the base model alone and proxy-tuned, side by side.</summary>
public static class Demo
{
    /// <summary>
    /// One held-out question per evaluation task (knowledge, arithmetic, refusal) about the demo models' generated
    /// world, sent as chat messages; docs/evaluation.md has the accuracy over all of them, misses included.
    /// </summary>
    public static readonly string[] Prompts = ["Where does Farid Keller live?", "What is 26 + 3?", "How tall is Elena Ueda?"];

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
            string[] prompts = config["ProxyOrleans:DemoPrompt"] is { } configured ? [configured] : Prompts;
            var sampling = new SamplingSpec { Temperature = 0, MaxNewTokens = 32 };
            async Task<string> Run(CombinationSpec spec, string prompt)
            {
                var text = new System.Text.StringBuilder();
                // As a chat turn: the expert sees its chat template and the combination's response prefix, the base and
                // anti-expert the question inside its answer cue.
                var request = new GenerationRequest { Combination = spec, Messages = [new ChatMessageSpec("user", prompt)], Sampling = sampling, TenantId = "demo" };
                await foreach (var ev in GenerationClient.StreamAsync(grains, request, "demo-" + Guid.NewGuid().ToString("N"), ct))
                    text.Append(ev.Text);
                return text.ToString();
            }
            foreach (string prompt in prompts)
            {
                // The base alone is asked as the combination asks it (same answer cue): zero-shot, as the reference evaluates bases.
                var baseOnly = Run(CombinationSpec.BaseOnly(combo.Spec.Base) with { AnswerCue = combo.Spec.AnswerCue }, prompt);
                var proxy = Run(combo.Spec, prompt);
                await Task.WhenAll(baseOnly, proxy);
                Console.WriteLine();
                Console.WriteLine($"Prompt: {prompt.Replace("\n", "\\n")}");
                Console.WriteLine($"--- {combo.Spec.Base} alone ---");
                Console.WriteLine(baseOnly.Result.Trim());
                Console.WriteLine($"--- {combo.Name}: {combo.Spec.Base} + {combo.Spec.Alpha}·({string.Join(" + ", combo.Spec.Experts.Select(e => $"{e.Expert} − {e.AntiExpert}"))}) ---");
                Console.WriteLine(proxy.Result.Trim());
            }
            Console.WriteLine();
            Console.WriteLine("Accuracy over all held-out questions: docs/evaluation.md. Try your own: proxyorleans generate --prompt \"...\" --chat --compare");
        }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            Console.Error.WriteLine("Demo failed: " + e.Message);
        }
    }
}
