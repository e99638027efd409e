using System.Text.RegularExpressions;

namespace ProxyOrleans.Deploy.Tests;

/// <summary>A Dockerfile read into global ARGs and stages of (instruction, arguments), continuation lines joined.</summary>
public sealed partial class Dockerfile
{
    public sealed record Instruction(string Keyword, string Args, int Line);

    public sealed class Stage(string name, string from, int index)
    {
        public string Name { get; } = name;
        public string From { get; } = from;
        public int Index { get; } = index;
        public List<Instruction> Instructions { get; } = [];
        public IEnumerable<Instruction> Of(string keyword) => Instructions.Where(i => i.Keyword == keyword);
    }

    public string Path { get; }
    public List<Instruction> GlobalArgs { get; } = [];
    public List<Stage> Stages { get; } = [];

    public Dockerfile(string path)
    {
        Path = path;
        var lines = File.ReadAllLines(path);
        for (int i = 0; i < lines.Length; i++)
        {
            int start = i;
            var text = lines[i].Trim();
            if (text.Length == 0 || text.StartsWith('#')) continue;
            while (text.EndsWith('\\') && i + 1 < lines.Length)
            {
                var next = lines[++i].Trim();
                text = text[..^1].TrimEnd() + " " + (next.StartsWith('#') ? "" : next);
            }
            var parts = text.Split(' ', 2, StringSplitOptions.TrimEntries);
            var ins = new Instruction(parts[0].ToUpperInvariant(), parts.Length > 1 ? parts[1] : "", start + 1);
            if (ins.Keyword == "FROM")
            {
                var m = FromRegex().Match(ins.Args);
                Stages.Add(new Stage(m.Groups["name"].Success ? m.Groups["name"].Value : $"#{Stages.Count}", m.Groups["image"].Value, Stages.Count));
            }
            else if (Stages.Count == 0) { if (ins.Keyword == "ARG") GlobalArgs.Add(ins); }
            else Stages[^1].Instructions.Add(ins);
        }
    }

    public Stage this[string name] => Stages.Single(s => s.Name == name);

    /// <summary>The stage a stage is built FROM, when that is a stage of this file.</summary>
    public Stage? Parent(Stage s) => Stages.FirstOrDefault(p => p.Index < s.Index && p.Name == s.From);

    /// <summary>An instruction's last value in a stage or, through FROM &lt;stage&gt;, its ancestors.</summary>
    public Instruction? Effective(Stage s, string keyword)
    {
        for (Stage? x = s; x is not null; x = Parent(x))
            if (x.Of(keyword).LastOrDefault() is { } i) return i;
        return null;
    }

    /// <summary>Stages that start a program: those with an ENTRYPOINT, their own or inherited.</summary>
    public IEnumerable<Stage> RunnableStages => Stages.Where(s => Effective(s, "ENTRYPOINT") is not null);

    [GeneratedRegex(@"^(--platform=\S+\s+)?(?<image>\S+)(\s+AS\s+(?<name>\S+))?$", RegexOptions.IgnoreCase)]
    private static partial Regex FromRegex();
}
