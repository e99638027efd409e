using System.Collections.Concurrent;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Grains.Models;

/// <summary>
/// Tokenizers for coordinators: the local model's when this silo hosts the base, otherwise the base model's
/// tokenizer files fetched once from its grain (a few hundred KB) and loaded here.
/// </summary>
public sealed class TokenizerCache(HostedModels hosted, IModelLoader loader, IGrainFactory grains)
{
    private readonly ConcurrentDictionary<string, Lazy<Task<(ITextTokenizer, int[])>>> _cache = new(StringComparer.Ordinal);

    /// <summary>The model's tokenizer and EOS ids.</summary>
    public Task<(ITextTokenizer Tokenizer, int[] EosTokenIds)> GetAsync(string model)
    {
        if (hosted.Find(model) is { } local) return Task.FromResult((local.Tokenizer, local.EosTokenIds));
        return _cache.GetOrAdd(model, m => new Lazy<Task<(ITextTokenizer, int[])>>(() => FetchAsync(m))).Value;
    }

    private async Task<(ITextTokenizer, int[])> FetchAsync(string model)
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
