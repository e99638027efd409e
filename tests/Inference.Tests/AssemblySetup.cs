// The tiny models and the repository's paths come from the shared test support (tests/TestSupport).
global using ProxyOrleans.TestSupport;
using System.Runtime.CompilerServices;
using ProxyOrleans.Inference.Runtime;

namespace ProxyOrleans.Inference.Tests;

internal static class AssemblySetup
{
    // Tests that build tensors without a model need libtorch loaded before their first torch call.
    [ModuleInitializer]
    internal static void Init() => TorchRuntime.EnsureLoaded();
}
