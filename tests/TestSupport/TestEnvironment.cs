using ProxyOrleans.Client.Benchmarks;

namespace ProxyOrleans.TestSupport;

/// <summary>Where tests find ../shared/data (the repository itself and its builds: <see cref="RepositoryLayout"/>).</summary>
public static class TestEnvironment
{
    /// <summary>A file or folder of ../shared/data (beside the repository root, as CI lays it out), or a clear error.</summary>
    public static string SharedData(params string[] parts)
    {
        var path = Path.GetFullPath(Path.Combine([RepositoryLayout.Root(), "..", "shared", "data", .. parts]));
        if (!File.Exists(path) && !Directory.Exists(path))
            throw new FileNotFoundException($"{string.Join('/', parts)} of ../shared/data is missing (expected beside the repository root).", path);
        return path;
    }
}
