using System.CommandLine;
using ProxyOrleans.Client.Commands;

// proxyorleans: one file per command under Commands/, each with a static Create().
var root = new RootCommand("ProxyOrleans: proxy-tuned generation on an Orleans cluster; tokenize, logits and benchmarks without one.");
root.Subcommands.Add(GenerateCommand.Create());
root.Subcommands.Add(TokenizeCommand.Create());
root.Subcommands.Add(LogitsCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(ChaosCommand.Create());
root.Description += "\nExit codes: 0 success (and --help); 1 the work failed (cluster unreachable, a model that does not load); " +
                    "2 bad command line or input (the message names it).";
var parsed = root.Parse(args);
// System.CommandLine answers 1 for a bad command line; 2 is this project's code for it (as the silo and gateway use).
if (parsed.Errors.Count > 0 && parsed.Action is not System.CommandLine.Help.HelpAction)
{
    foreach (var e in parsed.Errors) Console.Error.WriteLine("error: " + e.Message);
    Console.Error.WriteLine($"Run '{string.Join(' ', ["proxyorleans", .. CommandPath(parsed.CommandResult)])} --help' for the options.");
    return 2;
}
return await parsed.InvokeAsync();

static IEnumerable<string> CommandPath(System.CommandLine.Parsing.CommandResult? r)
{
    var names = new List<string>();
    for (; r?.Parent is System.CommandLine.Parsing.CommandResult parent; r = parent) names.Insert(0, r.Command.Name);
    return names;
}
