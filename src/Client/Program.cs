using System.CommandLine;
using ProxyOrleans.Client.Commands;

// One file per command under Commands/, each with a static Create().
var root = new RootCommand("ProxyOrleans command-line client: generate against a cluster; tokenize and other checkpoint tools without one.");
root.Subcommands.Add(TokenizeCommand.Create());
root.Subcommands.Add(LogitsCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
return root.Parse(args).Invoke();
