namespace ProxyOrleans.TestSupport;

/// <summary>Where tests find the repository and ../shared, linked into every test project.</summary>
public static class TestEnvironment
{
    private static readonly Lazy<string> Root = new(() =>
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "ProxyOrleans.sln"))) return d.FullName;
        throw new DirectoryNotFoundException("ProxyOrleans.sln not found above " + AppContext.BaseDirectory);
    });

    /// <summary>The repository root (the folder holding ProxyOrleans.sln above the test's binaries).</summary>
    public static string RepoRoot() => Root.Value;

    /// <summary>A file or folder of ../shared/data (beside the repository root, as CI lays it out), or a clear error.</summary>
    public static string SharedData(params string[] parts)
    {
        var path = Path.GetFullPath(Path.Combine([RepoRoot(), "..", "shared", "data", .. parts]));
        if (!File.Exists(path) && !Directory.Exists(path))
            throw new FileNotFoundException($"{string.Join('/', parts)} of ../shared/data is missing (expected beside the repository root).", path);
        return path;
    }
}
