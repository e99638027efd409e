using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using ProxyOrleans.Training.Data;

namespace ProxyOrleans.Training.Evaluation;

/// <summary>How a response is scored against its reference.</summary>
public enum ScoringRule { Exact, Contains, Regex }

/// <summary>One evaluation question: a prompt (the user's message), its reference answer and scoring rule.</summary>
public sealed record EvalItem(string Task, string Prompt, string Reference, ScoringRule Rule)
{
    /// <summary>
    /// The scored part of a response: its first non-empty line, trimmed (answers are one line; what a model
    /// rambles on with afterwards does not count for or against it).
    /// </summary>
    public static string FirstLine(string response)
    {
        foreach (var line in response.Split('\n'))
            if (line.Trim().Length > 0) return line.Trim();
        return "";
    }

    public bool Score(string response) => Rule switch
    {
        ScoringRule.Exact => FirstLine(response) == Reference,
        ScoringRule.Contains => response.Contains(Reference, StringComparison.Ordinal),
        ScoringRule.Regex => Regex.IsMatch(FirstLine(response), Reference, RegexOptions.None, TimeSpan.FromSeconds(1)),
        _ => false,
    };

    /// <summary>
    /// Lenient check used only as an extra column: the answer's content (the reference without "Answer: ")
    /// appears as a word in the first line, whatever the format. Shows what a base model knows without the format.
    /// </summary>
    public bool ContentMatch(string response)
    {
        string content = Reference.StartsWith(DemoWorld.AnswerPrefix) ? Reference[DemoWorld.AnswerPrefix.Length..] : Reference;
        return Regex.IsMatch(FirstLine(response), $@"(^|\W){Regex.Escape(content)}($|\W)");
    }
}

/// <summary>Built-in tasks from the demo world, and user task files (JSONL).</summary>
public static class EvalTasks
{
    public static IReadOnlyList<EvalItem> BuiltIn(int seed, int perTask) =>
        new DemoWorld(new WorldOptions { Seed = seed }).EvalExamples(perTask)
            .Select(q => new EvalItem(q.Task, q.Question, q.Answer, ScoringRule.Exact)).ToArray();

    sealed record Line(
        [property: JsonPropertyName("task")] string? Task,
        [property: JsonPropertyName("prompt")] string? Prompt,
        [property: JsonPropertyName("reference")] string? Reference,
        [property: JsonPropertyName("rule")] string? Rule);

    /// <summary>
    /// Reads a JSONL task file: one object per line with "prompt", "reference", optional "rule"
    /// (exact | contains | regex; default exact) and optional "task" (a group name; default "custom").
    /// Blank lines and lines starting with '#' are skipped. Errors name the line and what to fix.
    /// </summary>
    public static IReadOnlyList<EvalItem> Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Task file '{path}' does not exist.", path);
        var items = new List<EvalItem>();
        int n = 0;
        foreach (var raw in File.ReadLines(path))
        {
            n++;
            if (raw.Trim().Length == 0 || raw.TrimStart().StartsWith('#')) continue;
            Line? line;
            try { line = JsonSerializer.Deserialize<Line>(raw); }
            catch (JsonException e) { throw new InvalidDataException($"{path}:{n}: not a JSON object ({e.Message})."); }
            if (line?.Prompt is not { Length: > 0 } prompt)
                throw new InvalidDataException($"{path}:{n}: \"prompt\" is missing or empty.");
            if (line.Reference is null)
                throw new InvalidDataException($"{path}:{n}: \"reference\" is missing.");
            var rule = (line.Rule ?? "exact").ToLowerInvariant() switch
            {
                "exact" => ScoringRule.Exact,
                "contains" => ScoringRule.Contains,
                "regex" => ScoringRule.Regex,
                _ => throw new InvalidDataException($"{path}:{n}: \"rule\" must be exact, contains or regex, got '{line.Rule}'."),
            };
            if (rule == ScoringRule.Regex)
            {
                try { _ = new Regex(line.Reference); }
                catch (ArgumentException e) { throw new InvalidDataException($"{path}:{n}: \"reference\" is not a valid regex ({e.Message})."); }
            }
            items.Add(new EvalItem(line.Task ?? "custom", prompt, line.Reference, rule));
        }
        if (items.Count == 0) throw new InvalidDataException($"{path}: no tasks found (expected JSONL lines with prompt and reference).");
        return items;
    }
}
