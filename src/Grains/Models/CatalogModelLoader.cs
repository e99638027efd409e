using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Grains.Models;

/// <summary>Loads model directories with the inference library's catalog (the same loader the single-process path uses).</summary>
public sealed class CatalogModelLoader : IModelLoader
{
    public (ILogitsModel Model, ITextTokenizer Tokenizer) Load(string name, string path) =>
        throw new NotImplementedException("ModelCatalog not merged yet");

    public ITextTokenizer LoadTokenizer(string path) => throw new NotImplementedException("TokenizerLoader not merged yet");
}
