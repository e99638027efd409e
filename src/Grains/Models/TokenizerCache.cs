using System.Collections.Concurrent;
using ProxyOrleans.Inference.Decoding;
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

    private readonly ConcurrentDictionary<(VocabularyId, VocabularyId, string), string?> _verdicts = new();

    /// <summary>
    /// The single-process path's <see cref="VocabularyCheck"/> (logits counts, BOS/EOS, token by token, probe encodings;
    /// a few extra expert tokens allowed) between the base and another model of a combination. Equal fingerprints and
    /// logits counts pass without fetching anything (the fingerprint digests what the check compares); otherwise both
    /// tokenizers are fetched once per pair of fingerprints on this silo and checked, so that a mismatch is an
    /// <see cref="InvalidRequestException"/> saying what differs, with the same message as the single-process path.
    /// </summary>
    public async Task EnsureSameVocabularyAsync(VocabularyId baseModel, VocabularyId other, string role)
    {
        if (baseModel.Fingerprint == other.Fingerprint && baseModel.Logits == other.Logits) return;
        var key = (baseModel, other, role);
        if (!_verdicts.TryGetValue(key, out var error))
        {
            var (a, b) = (GetAsync(baseModel.Model), GetAsync(other.Model));
            try
            {
                VocabularyCheck.Ensure(baseModel.Model, baseModel.Logits, await a, other.Model, other.Logits, await b, role);
                error = null;
            }
            catch (InvalidOperationException e) { error = e.Message; }
            _verdicts[key] = error;
        }
        if (error is not null) throw new InvalidRequestException("model", error);
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
