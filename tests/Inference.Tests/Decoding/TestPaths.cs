namespace ProxyOrleans.Inference.Tests.Decoding;

internal static class TestPaths
{
    /// <summary>The repository root: the first directory above the test binaries that holds ProxyOrleans.sln.</summary>
    public static string RepoRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "ProxyOrleans.sln"))) return dir.FullName;
            throw new DirectoryNotFoundException("ProxyOrleans.sln not found above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>../shared/data beside the repository (CI layout).</summary>
    public static string SharedData(params string[] parts) =>
        Path.GetFullPath(Path.Combine([RepoRoot, "..", "shared", "data", .. parts]));
}
