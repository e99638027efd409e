using System.CommandLine;
using ProxyOrleans.Client.Commands;

// proxyorleans: one file per command under Commands/, each with a static Create().
var root = new RootCommand("ProxyOrleans: proxy-tuned generation on an Orleans cluster; tokenize, logits and benchmarks without one.");
root.Subcommands.Add(GenerateCommand.Create());
root.Subcommands.Add(TokenizeCommand.Create());
root.Subcommands.Add(LogitsCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(ChaosCommand.Create());
return await root.Parse(args).InvokeAsync();
