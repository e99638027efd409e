using System.CommandLine;
using ProxyOrleans.Client.Benchmarks;

namespace ProxyOrleans.Client;

/// <summary>
/// The options of the commands that run the base / expert / anti-expert trio (`bench cluster`, `chaos`): each model as
/// name=dir, by default the demo family's model of models/demo, and --verbose for the silos' output.
/// </summary>
internal sealed class ModelTrioOptions
{
    public Option<string?> Base { get; } = new("--base") { Description = "Base model: name=dir (default: models/demo/base-large)." };
    public Option<string?> Expert { get; } = new("--expert") { Description = "Expert: name=dir (default: models/demo/tuned-small)." };
    public Option<string?> AntiExpert { get; } = new("--anti-expert") { Description = "Anti-expert: name=dir (default: models/demo/base-small)." };
    public Option<bool> Verbose { get; } = new("--verbose") { Description = "Show the silos' output." };

    /// <summary>The three models the options name (or the demo family's).</summary>
    public ((string Name, string Path) Base, (string Name, string Path) Expert, (string Name, string Path) AntiExpert) Models(ParseResult p) =>
        (Model(p.GetValue(Base), "base-large"), Model(p.GetValue(Expert), "tuned-small"), Model(p.GetValue(AntiExpert), "base-small"));

    /// <summary>A model option's value: name=dir or a directory (named after it); null: the demo model of that name.</summary>
    public static (string Name, string Path) Model(string? spec, string demoName)
    {
        if (spec is not null)
        {
            var eq = spec.IndexOf('=');
            var path = Path.GetFullPath(eq > 0 ? spec[(eq + 1)..] : spec);
            if (!Directory.Exists(path)) throw new DirectoryNotFoundException($"Model directory '{path}' does not exist.");
            return (eq > 0 ? spec[..eq] : new DirectoryInfo(path).Name, path);
        }
        var dir = Path.Combine(RepositoryLayout.Root(), "models", "demo", demoName);
        if (!File.Exists(Path.Combine(dir, "config.json")))
            throw new DirectoryNotFoundException($"Demo model '{demoName}' not found in {dir}: train the demo models (see README) or pass --base/--expert/--anti-expert name=dir.");
        return (demoName, dir);
    }
}
