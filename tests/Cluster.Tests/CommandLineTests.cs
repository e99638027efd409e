using ProxyOrleans.Client.Benchmarks;
using Xunit;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>
/// Every executable behaves like a command-line tool: --help prints help and exits 0 without starting anything,
/// an unknown option exits 2 with a message naming it. Runs the built programs as a person would.
/// </summary>
public sealed class CommandLineTests
{
    public static TheoryData<string> Programs => new() { "silo", "gateway", "client" };

    static string Dll(string program) => program switch
    {
        "silo" => RepositoryLayout.BuiltDll("Silo"),
        "gateway" => RepositoryLayout.BuiltDll("Gateway"),
        _ => RepositoryLayout.BuiltDll("Client", assemblyName: "proxyorleans"),
    };

    static async Task<(int Code, string Out, string Err)> RunAsync(string program, params string[] args)
    {
        var dll = Dll(program);
        using var p = new HostProcess(program, dll, new Dictionary<string, string>(), Path.GetDirectoryName(dll)!, args);
        if (!await p.WaitForExitAsync(TimeSpan.FromSeconds(60)))
            throw new TimeoutException($"{program} {string.Join(' ', args)} still ran after 60 s: it started instead of answering."); // disposing kills it
        return (p.ExitCode, string.Join('\n', p.StandardOutputLines), p.StandardError);
    }

    [Theory, MemberData(nameof(Programs))]
    public async Task Help_prints_usage_and_exit_codes_and_starts_nothing(string program)
    {
        var (code, stdout, stderr) = await RunAsync(program, "--help");
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("Usage", stdout, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("Exit codes", stdout);
        Assert.DoesNotContain("Silo up", stdout);
    }

    [Theory, MemberData(nameof(Programs))]
    public async Task An_unknown_option_is_an_error_that_names_it(string program)
    {
        var (code, stdout, stderr) = await RunAsync(program, "--no-such-option");
        Assert.True(code == 2, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("--no-such-option", stderr);
    }
}
