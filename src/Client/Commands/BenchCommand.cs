using System.CommandLine;

namespace ProxyOrleans.Client.Commands;

/// <summary><c>proxyorleans bench &lt;what&gt;</c>: benchmarks that print figures and end with one key=value line.</summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var command = new Command("bench", "Benchmarks (each ends with one line of key=value pairs)");
        command.Subcommands.Add(BenchModelCommand.Create());
        command.Subcommands.Add(BenchClusterCommand.Create());
        return command;
    }
}
