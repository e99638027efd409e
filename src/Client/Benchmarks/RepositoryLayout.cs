namespace ProxyOrleans.Client.Benchmarks;

/// <summary>
/// Where the repository and the builds of its programs are, found from the running program's own folder (a test's
/// bin folder, or the client's when `bench cluster` or `chaos` runs): the one finder the tests and the commands share.
/// </summary>
public static class RepositoryLayout
{
    private static readonly Lazy<string> RootFolder = new(() =>
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "ProxyOrleans.sln"))) return d.FullName;
        throw new DirectoryNotFoundException("ProxyOrleans.sln not found above " + AppContext.BaseDirectory +
                                             ": run this from a build inside the repository.");
    });

    /// <summary>The repository root (the folder holding ProxyOrleans.sln above the running program).</summary>
    public static string Root() => RootFolder.Value;

    /// <summary>
    /// The build of src/<paramref name="project"/> (what `dotnet <paramref name="assemblyName"/>.dll` runs, and what
    /// the image publishes): in the running program's own configuration first, so that a Release test runs Release
    /// hosts, then Release, then Debug. <paramref name="assemblyName"/> defaults to ProxyOrleans.&lt;project&gt;.
    /// </summary>
    public static string BuiltDll(string project, string? assemblyName = null)
    {
        var file = (assemblyName ?? $"ProxyOrleans.{project}") + ".dll";
        // A build's folder is bin/<configuration>/net10.0/linux-x64/ (Directory.Build.props sets the runtime).
        var running = new DirectoryInfo(AppContext.BaseDirectory).Parent?.Parent?.Name;
        var configurations = new[] { running, "Release", "Debug" }.Where(c => c is "Release" or "Debug").Distinct().ToArray();
        foreach (var configuration in configurations)
        {
            var dll = Path.Combine(Root(), "src", project, "bin", configuration!, "net10.0", "linux-x64", file);
            if (File.Exists(dll)) return dll;
        }
        throw new FileNotFoundException($"src/{project} is not built ({file} is in none of its {string.Join(", ", configurations)} builds): " +
                                        $"run `dotnet build src/{project} -c {configurations[0]}` (a test project referencing it builds it too).");
    }
}
