using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Grains.Models;

/// <summary>Loads model directories as the single-process path does (ModelCatalog.Load: weights, tokenizer, config, checks).</summary>
public sealed class CatalogModelLoader : IModelLoader
{
    private static readonly ModelCatalog Catalog = new(null,
        (dir, name) => LlamaInferenceModel.Load(dir, new InferenceOptions { Name = name }),
        dir => TokenizerLoader.Load(dir), includeDemoModels: false);

    public LoadedModel Load(string name, string path) => Catalog.Load(name, path);

    public ITextTokenizer LoadTokenizer(string path) => TokenizerLoader.Load(path);
}
