namespace ProxyOrleans.Inference.Tests.Decoding;

internal static class TestPaths
{
    /// <summary>../shared/data beside the repository (CI layout).</summary>
    public static string SharedData(params string[] parts) =>
        Path.GetFullPath(Path.Combine([TestModels.RepoRoot(), "..", "shared", "data", .. parts]));
}
