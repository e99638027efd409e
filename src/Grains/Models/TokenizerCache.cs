using System.Collections.Concurrent;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Grains.Models;

/// <summary>
/// Tokenizers for coordinators: the local model's when this silo hosts the base, otherwise the base model's
/// tokenizer files fetched once from its grain (a few hundred KB) and loaded here.
/// </summary>
public sealed class TokenizerCache(HostedModels hosted, IModelLoader loader, IGrainFactory grains)
{
    private readonly ConcurrentDictionary<string, Lazy<Task<ITextTokenizer>>> _cache = new(StringComparer.Ordinal);

    /// <summary>The model's tokenizer (its EosTokenIds are the ones the single-process decoder stops at).</summary>
    public Task<ITextTokenizer> GetAsync(string model)
    {
        if (hosted.Find(model) is { } local) return Task.FromResult(local.Tokenizer);
        return _cache.GetOrAdd(model, m => new Lazy<Task<ITextTokenizer>>(() => FetchAsync(m))).Value;
    }

    private async Task<ITextTokenizer> FetchAsync(string model)
    {
        try
        {
            var files = await grains.GetGrain<IModelGrain>(model).GetTokenizerFiles();
            var dir = Path.Combine(Path.GetTempPath(), "proxyorleans-tokenizers", $"{model}-{Environment.ProcessId}");
            Directory.CreateDirectory(dir);
            foreach (var (name, bytes) in files.Files) await File.WriteAllBytesAsync(Path.Combine(dir, name), bytes);
            return loader.LoadTokenizer(dir);
        }
        catch
        {
            _cache.TryRemove(model, out _);
            throw;
        }
    }
}
