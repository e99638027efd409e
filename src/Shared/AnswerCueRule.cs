namespace ProxyOrleans;

/// <summary>
/// The answer cue's one rule, compiled as source into src/Abstractions (the gateway, the client and the coordinator
/// check a cue before it travels) and src/Inference (<c>ProxyPrompt</c> checks it where the prompt is tokenized). Linked,
/// not referenced: Abstractions carries Orleans, which Inference must not know, and the gateway must not load Inference.
/// </summary>
internal static class AnswerCueRule
{
    /// <summary>Where the prompt goes in a cue: it must stand there exactly once.</summary>
    public const string Placeholder = "{prompt}";

    /// <summary>The reference's zero-shot question format for untuned models.</summary>
    public const string QuestionAnswerCue = "Question: {prompt}\nAnswer:";

    /// <summary>Why <paramref name="answerCue"/> cannot be used (null: it can, or there is none), in words a caller can act on.</summary>
    public static string? Problem(string? answerCue)
    {
        if (answerCue is null) return null;
        int first = answerCue.IndexOf(Placeholder, StringComparison.Ordinal);
        if (first >= 0 && answerCue.IndexOf(Placeholder, first + 1, StringComparison.Ordinal) < 0) return null;
        return $"The answer cue must contain {Placeholder} exactly once (where the prompt goes), e.g. \"{QuestionAnswerCue.Replace("\n", "\\n")}\"; " +
               $"got \"{answerCue.Replace("\n", "\\n")}\".";
    }
}
