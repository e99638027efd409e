using System.Text.Json;
using Microsoft.Extensions.Configuration;
using ProxyOrleans.Abstractions;
using ProxyOrleans.Inference.Decoding;

namespace ProxyOrleans.Silo;

/// <summary>
/// The main job's demo: per evaluation task, one held-out question answered by the base alone, proxy-tuned, and the
/// directly tuned large model (when hosted), side by side, through the cluster like any request.
/// </summary>
public static class Demo
{
    /// <summary>Written by the evaluation beside the bundled models: one question per task (see docs/evaluation.md).</summary>
    public const string QuestionsFile = "demo-questions.json";

    /// <summary>The directly tuned counterpart shown next to proxy-tuning, when the silo hosts it.</summary>
    public const string TunedLarge = "tuned-large";

    public sealed record Question(string Task, string Prompt, string Reference);

    /// <summary>The questions the evaluation picked for the bundled models, or none (and why).</summary>
    public static (IReadOnlyList<Question> Questions, string? Missing) LoadQuestions()
    {
        string? dir = ModelCatalog.FindDemoModelsDirectory();
        string? path = dir is null ? null : Path.Combine(dir, QuestionsFile);
        if (path is null || !File.Exists(path))
            return ([], $"{QuestionsFile} not found beside the demo models (written by `dotnet run --project src/Training -c Release -- eval`)");
        var questions = JsonSerializer.Deserialize<Question[]>(File.ReadAllText(path), new JsonSerializerOptions { PropertyNameCaseInsensitive = true });
        return (questions ?? [], null);
    }

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
            IReadOnlyList<Question> questions;
            if (config["ProxyOrleans:DemoPrompt"] is { } configured) questions = [new Question("your prompt", configured, "")];
            else
            {
                (questions, string? missing) = LoadQuestions();
                if (missing is not null) { Console.WriteLine($"Demo skipped: {missing}."); return; }
            }
            bool tunedHosted = models.Models.Any(m => m.Name == TunedLarge) && combo.Spec.Base != TunedLarge;
            var sampling = new SamplingSpec { Temperature = 0, MaxNewTokens = 24 };
            async Task<string> Run(CombinationSpec spec, string prompt)
            {
                var text = new System.Text.StringBuilder();
                var request = new GenerationRequest { Combination = spec, Messages = [new ChatMessageSpec("user", prompt)], Sampling = sampling, TenantId = "demo" };
                await foreach (var ev in GenerationClient.StreamAsync(grains, request, "demo-" + Guid.NewGuid().ToString("N"), ct))
                    text.Append(ev.Text);
                return text.ToString();
            }
            Console.WriteLine();
            Console.WriteLine($"Demo: one held-out question per task, greedy. {combo.Spec.Base} alone is asked zero-shot inside the answer cue " +
                              $"\"{combo.Spec.AnswerCue?.Replace("\n", "\\n")}\"; the expert and {TunedLarge} through their chat template and the response prefix " +
                              $"\"{combo.Spec.ExpertResponsePrefix}\". Per task, the first question {combo.Name} answered right in the evaluation (for knowledge and " +
                              $"arithmetic, {combo.Spec.Base} too); the rates over all questions and seeds, misses included, are in docs/evaluation.md.");
            foreach (var q in questions)
            {
                // The base alone is asked as the combination asks it (same answer cue); the tuned model alone as its expert is.
                var baseOnly = Run(combo.Spec.BaseAlone(), q.Prompt);
                var proxy = Run(combo.Spec, q.Prompt);
                var tuned = tunedHosted
                    ? Run(CombinationSpec.BaseOnly(TunedLarge) with { ExpertResponsePrefix = combo.Spec.ExpertResponsePrefix, BaseChatTemplate = true }, q.Prompt)
                    : Task.FromResult("");
                await Task.WhenAll(baseOnly, proxy, tuned);
                Console.WriteLine();
                Console.WriteLine($"[{q.Task}] {q.Prompt.Replace("\n", "\\n")}" + (q.Reference.Length > 0 ? $"   (reference: {q.Reference})" : ""));
                Console.WriteLine($"  {combo.Spec.Base + " alone",-16} {OneLine(baseOnly.Result)}");
                Console.WriteLine($"  {combo.Name,-16} {OneLine(proxy.Result)}");
                if (tunedHosted) Console.WriteLine($"  {TunedLarge,-16} {OneLine(tuned.Result)}");
            }
            Console.WriteLine();
            Console.WriteLine($"{combo.Name} = {combo.Spec.Base} + {combo.Spec.Alpha}·({string.Join(" + ", combo.Spec.Experts.Select(e => $"{e.Expert} − {e.AntiExpert}"))}). " +
                              "Try your own: proxyorleans generate --prompt \"...\" --chat --compare");
        }
        catch (Exception e)
        {
            // Stopped (Ctrl+C, SIGTERM) while the demo ran: the host shuts down and whatever the demo was waiting for
            // fails with it; nothing to report then.
            if (!ct.IsCancellationRequested) Console.Error.WriteLine("Demo failed: " + e.Message);
        }
    }

    static string OneLine(string s) => s.Trim().Replace("\n", "\\n");
}
