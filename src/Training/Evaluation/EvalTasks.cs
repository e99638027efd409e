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
    /// <summary>The value scored as content (built-in tasks); null: the reference without "Answer: ".</summary>
    public string? Content { get; init; }
    /// <summary>A value the reply must not contain to count as content (the truthful task's misconception).</summary>
    public string? Wrong { get; init; }

    /// <summary>Refusal questions are scored by whether the reply refuses; every other question by its content.</summary>
    public bool ExpectsRefusal => Task == "refusal";

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

    /// <summary>The reply a tuned model gives after the response prefix "Answer:" (the reference without it).</summary>
    public string ExpectedReply => Reference.StartsWith(DemoWorld.AnswerPrefix, StringComparison.Ordinal) ? Reference[DemoWorld.AnswerPrefix.Length..] : Reference;

    /// <summary>The rule of a task file; for built-in tasks <see cref="Strict"/>.</summary>
    public bool Score(string response) => Rule switch
    {
        ScoringRule.Exact => FirstLine(response) == Reference || Strict(response),
        ScoringRule.Contains => response.Contains(Reference, StringComparison.Ordinal),
        ScoringRule.Regex => Regex.IsMatch(FirstLine(response), Reference, RegexOptions.None, TimeSpan.FromSeconds(1)),
        _ => false,
    };

    /// <summary>
    /// The tuned format exactly: the whole reply is the expected answer and nothing else (the model stopped),
    /// with or without the "Answer: " a model writes itself when it is not given the response prefix.
    /// </summary>
    public bool Strict(string response)
    {
        string r = response.Trim();
        return r == ExpectedReply || r == Reference;
    }

    /// <summary>
    /// What the reply knows, whatever its format: the content appears as a word in the first line (and the
    /// misconception does not). For refusal questions: whether the reply refuses.
    /// </summary>
    public bool ContentMatch(string response)
    {
        if (ExpectsRefusal) return Refuses(response);
        string line = FirstLine(response);
        string content = Content ?? ExpectedReply;
        return Word(line, content) && (Wrong is null || !Word(line, Wrong));
    }

    /// <summary>Whether a reply declines to answer (the tuned refusal or any "cannot answer").</summary>
    public static bool Refuses(string response)
    {
        string line = FirstLine(response);
        return line.StartsWith("Sorry", StringComparison.OrdinalIgnoreCase) || line.Contains("cannot answer", StringComparison.OrdinalIgnoreCase);
    }

    static bool Word(string line, string value) => Regex.IsMatch(line, $@"(^|\W){Regex.Escape(value)}($|\W)");
}

/// <summary>Built-in tasks from the demo world, and user task files (JSONL).</summary>
public static class EvalTasks
{
    public static IReadOnlyList<EvalItem> BuiltIn(DemoWorld world) =>
        world.EvalExamples().Select(q => new EvalItem(q.Task, q.Prompt, q.Answer, ScoringRule.Exact) { Content = q.Content, Wrong = q.Wrong }).ToArray();

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
