using System.CommandLine;
using ProxyOrleans.Client.Commands;

// proxyorleans: one file per command under Commands/.
var root = new RootCommand("ProxyOrleans: proxy-tuned generation on an Orleans cluster, and tools.");
root.Subcommands.Add(GenerateCommand.Create());
var bench = new Command("bench", "Benchmarks.");
bench.Subcommands.Add(BenchClusterCommand.Create());
root.Subcommands.Add(bench);
return await root.Parse(args).InvokeAsync();
