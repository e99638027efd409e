using Microsoft.Extensions.Options;
using ProxyOrleans.Grains.Hosting;
using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Grains.Models;

/// <summary>
/// Loads model directories as the single-process path does (ModelCatalog.Load: weights, tokenizer, config, checks),
/// on the silo's ProxyOrleans:Device with ProxyOrleans:Threads. A device this build cannot use (cuda on TorchSharp-cpu)
/// fails the load, so the silo fails at start with the Inference library's message.
/// </summary>
public sealed class CatalogModelLoader(IOptions<ProxyOrleansOptions> options) : IModelLoader
{
    public LoadedModel Load(string name, string path, string? chatTemplate = null) =>
        new ModelCatalog(null, (dir, model) => LlamaInferenceModel.Load(dir, options.Value.Inference(model)),
            dir => TokenizerLoader.Load(dir, chatTemplate), includeDemoModels: false).Load(name, path);

    public ITextTokenizer LoadTokenizer(string path) => TokenizerLoader.Load(path);
}
