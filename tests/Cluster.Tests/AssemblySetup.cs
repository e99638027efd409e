using System.Runtime.CompilerServices;
using ProxyOrleans.Inference.Runtime;

namespace ProxyOrleans.Cluster.Tests;

internal static class AssemblySetup
{
    // Tests that build tensors without a model need libtorch loaded before their first torch call.
    [ModuleInitializer]
    internal static void Init() => TorchRuntime.EnsureLoaded();
}
