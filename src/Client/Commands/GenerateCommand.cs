using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using ProxyOrleans.Abstractions;

namespace ProxyOrleans.Client.Commands;

/// <summary>proxyorleans generate: streams a proxy-tuned (or base-only) generation from the cluster to the terminal.</summary>
public static class GenerateCommand
{
    public static Command Create()
    {
        var prompt = new Option<string>("--prompt", "-p") { Description = "The prompt.", Required = true };
        var chat = new Option<bool>("--chat") { Description = "Send the prompt as a chat user message (experts see their chat template)." };
        var combination = new Option<string?>("--combination", "-c") { Description = "A configured combination (default: the first ready one, e.g. proxy-large) or a model name." };
        var baseModel = new Option<string?>("--base") { Description = "Base model (instead of --combination)." };
        var expert = new Option<string[]>("--expert") { Description = "Expert model(s), paired in order with --anti-expert." };
        var anti = new Option<string[]>("--anti-expert") { Description = "Anti-expert model(s)." };
        var alpha = new Option<float?>("--alpha") { Description = "Strength of the steering (default: the combination's, 1)." };
        var temperature = new Option<float>("--temperature") { Description = "0 = greedy.", DefaultValueFactory = _ => 0f };
        var topP = new Option<float>("--top-p") { DefaultValueFactory = _ => 1f };
        var topK = new Option<int>("--top-k") { DefaultValueFactory = _ => 0 };
        var seed = new Option<ulong?>("--seed");
        var maxTokens = new Option<int>("--max-tokens") { DefaultValueFactory = _ => 64 };
        var stop = new Option<string[]>("--stop") { Description = "Stop sequence(s)." };
        var compare = new Option<bool>("--compare") { Description = "Show base-only (with the same answer cue) and proxy-tuned side by side." };
        var fp16 = new Option<bool>("--fp16") { Description = "Ship logits between silos as fp16 (half the bytes; not bit-exact)." };
        var stats = new Option<bool>("--stats") { Description = "Print timing and traffic figures at the end." };
        var answerCue = new Option<string?>("--answer-cue")
        {
            Description = "How the base and anti-experts see the prompt, with {prompt} where it goes, e.g. \"Question: {prompt}\\nAnswer:\" " +
                          "(\\n is a newline; default: the combination's; \"{prompt}\" for the bare prompt).",
        };
        var responsePrefix = new Option<string?>("--expert-response-prefix")
        {
            Description = "Text after the experts' chat template, e.g. \"Answer:\" (default: the combination's; \"\" for none).",
        };
        var cmd = new Command("generate", "Generate text on the cluster, streaming tokens as they come.")
        {
            prompt, chat, combination, baseModel, expert, anti, alpha, temperature, topP, topK, seed, maxTokens, stop, compare, fp16, stats,
            answerCue, responsePrefix,
        };
        ClusterConnection.AddOptions(cmd);
        cmd.SetAction(async (p, ct) =>
        {
            using var host = await ClusterConnection.ConnectAsync(p, ct);
            var grains = host.Services.GetRequiredService<IGrainFactory>();
            CombinationSpec spec;
            var experts = p.GetValue(expert) ?? [];
            var antis = p.GetValue(anti) ?? [];
            if (p.GetValue(baseModel) is string b)
            {
                if (experts.Length != antis.Length)
                {
                    Console.Error.WriteLine($"error: {experts.Length} --expert but {antis.Length} --anti-expert: give one anti-expert per expert.");
                    return 2;
                }
                spec = new CombinationSpec(b, experts.Zip(antis, (e, a) => new ExpertSpec(e, a)).ToArray(), p.GetValue(alpha) ?? 1f);
            }
            else
            {
                var directory = grains.GetGrain<IModelDirectoryGrain>(DirectoryKeys.Default);
                var name = p.GetValue(combination);
                CombinationSpec? resolved;
                if (name is null)
                {
                    var models = await directory.GetModels();
                    resolved = models.Combinations.FirstOrDefault(c => c.Ready)?.Spec;
                    if (resolved is null)
                    {
                        Console.Error.WriteLine("error: no configured combination is ready; pass --combination or --base/--expert/--anti-expert. Hosted: " +
                                                string.Join(", ", models.Models.Select(m => m.Name)));
                        return 2;
                    }
                }
                else resolved = await directory.Resolve(name);
                if (resolved is null)
                {
                    var models = await directory.GetModels();
                    Console.Error.WriteLine($"error: unknown model or combination '{name}'. Combinations: {string.Join(", ", models.Combinations.Select(c => c.Name))}; " +
                                            $"models: {string.Join(", ", models.Models.Select(m => m.Name))}.");
                    return 2;
                }
                spec = p.GetValue(alpha) is float a ? resolved with { Alpha = a } : resolved;
            }
            try { spec = WithPromptOptions(spec, p.GetValue(answerCue), p.GetValue(responsePrefix)); }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine("error: " + e.Message);
                return 2;
            }
            var text = p.GetValue(prompt)!;
            var request = new GenerationRequest
            {
                Combination = spec,
                Prompt = p.GetValue(chat) ? null : text,
                Messages = p.GetValue(chat) ? [new ChatMessageSpec("user", text)] : null,
                Sampling = new SamplingSpec
                {
                    Temperature = p.GetValue(temperature), TopP = p.GetValue(topP), TopK = p.GetValue(topK), Seed = p.GetValue(seed),
                    MaxNewTokens = p.GetValue(maxTokens), Stop = p.GetValue(stop) ?? [],
                },
                TenantId = "cli",
                Precision = p.GetValue(fp16) ? LogitsPrecision.Float16 : LogitsPrecision.Float32,
            };
            try
            {
                if (p.GetValue(compare))
                {
                    var baseOnly = Collect(grains, request with { Combination = spec.BaseAlone() }, ct);
                    var proxied = Collect(grains, request, ct);
                    await Task.WhenAll(baseOnly, proxied);
                    SideBySide($"{spec.Base} alone", baseOnly.Result.Text, $"proxy-tuned: {Describe(spec)}", proxied.Result.Text);
                    if (p.GetValue(stats)) { PrintStats(baseOnly.Result.Last); PrintStats(proxied.Result.Last); }
                    return 0;
                }
                TokenEvent? last = null;
                await foreach (var ev in GenerationClient.StreamAsync(grains, request, NewId(), ct))
                {
                    Console.Write(ev.Text);
                    last = ev;
                }
                Console.WriteLine();
                Console.Error.WriteLine($"[{last?.Finish}, {last?.Usage?.PromptTokens} prompt + {last?.Usage?.CompletionTokens} completion tokens, seed {last?.Seed}]");
                if (p.GetValue(stats)) PrintStats(last);
                return 0;
            }
            catch (ProxyOrleansException e)
            {
                Console.Error.WriteLine("error: " + e.Message);
                return 1;
            }
        });
        return cmd;
    }

    /// <summary>
    /// The combination with the command line's prompt options over its configured ones; a literal \n in either option
    /// is a newline (shells make a real one awkward). A cue without {prompt} is an ArgumentException naming the option.
    /// </summary>
    public static CombinationSpec WithPromptOptions(CombinationSpec spec, string? answerCue, string? responsePrefix)
    {
        if (answerCue is not null)
        {
            answerCue = answerCue.Replace("\\n", "\n", StringComparison.Ordinal);
            if (CombinationSpec.AnswerCueProblem(answerCue) is { } problem) throw new ArgumentException($"--answer-cue: {problem}");
            spec = spec with { AnswerCue = answerCue };
        }
        if (responsePrefix is not null) spec = spec with { ExpertResponsePrefix = responsePrefix.Replace("\\n", "\n", StringComparison.Ordinal) };
        return spec;
    }

    internal static string NewId() => "cli-" + Guid.NewGuid().ToString("N")[..12];

    internal static string Describe(CombinationSpec s) =>
        s.Experts.Length == 0 ? s.Base : $"{s.Base} + {s.Alpha}·({string.Join(" + ", s.Experts.Select(e => $"{e.Expert} − {e.AntiExpert}"))})";

    internal static async Task<(string Text, TokenEvent? Last, int[] Tokens)> Collect(IGrainFactory grains, GenerationRequest request, CancellationToken ct)
    {
        var sb = new System.Text.StringBuilder();
        var tokens = new List<int>();
        TokenEvent? last = null;
        await foreach (var ev in GenerationClient.StreamAsync(grains, request, NewId(), ct))
        {
            sb.Append(ev.Text);
            if (ev.TokenId >= 0) tokens.Add(ev.TokenId);
            last = ev;
        }
        return (sb.ToString(), last, tokens.ToArray());
    }

    private static void PrintStats(TokenEvent? last)
    {
        if (last?.Stats is not { } s) return;
        Console.Error.WriteLine($"[{s.Layout}; coordinator {s.CoordinatorSilo}; prefill {s.PrefillMs:F1} ms; {s.Steps} steps, step {s.StepMs:F2} ms " +
                                $"(models {s.ModelMs:F2}, fan-out {s.FanOutMs:F2}, combine {s.CombineMs:F3}, sample {s.SampleMs:F3}); {s.BytesPerStep / 1024:F0} KiB/step; failovers {s.Failovers}]");
    }

    private static void SideBySide(string leftTitle, string left, string rightTitle, string right)
    {
        int width = Math.Clamp((SafeWidth() - 3) / 2, 20, 80);
        var l = Wrap(left.Trim(), width);
        var r = Wrap(right.Trim(), width);
        Console.WriteLine($"{Fit(leftTitle, width)} | {Fit(rightTitle, width)}");
        Console.WriteLine($"{new string('-', width)}-+-{new string('-', width)}");
        for (int i = 0; i < Math.Max(l.Count, r.Count); i++)
            Console.WriteLine($"{Fit(i < l.Count ? l[i] : "", width)} | {(i < r.Count ? r[i] : "")}");
    }

    private static int SafeWidth()
    {
        try { return Console.IsOutputRedirected ? 160 : Console.WindowWidth; } catch { return 160; }
    }

    private static string Fit(string s, int w) => s.Length > w ? s[..(w - 1)] + "…" : s.PadRight(w);

    private static List<string> Wrap(string text, int width)
    {
        var lines = new List<string>();
        foreach (var para in text.Replace("\r", "").Split('\n'))
        {
            var line = "";
            foreach (var word in para.Split(' '))
            {
                if (line.Length + word.Length + 1 > width && line.Length > 0) { lines.Add(line); line = ""; }
                line = line.Length == 0 ? word : line + " " + word;
                while (line.Length > width) { lines.Add(line[..width]); line = line[width..]; }
            }
            lines.Add(line);
        }
        return lines;
    }
}
