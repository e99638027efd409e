using System.Security.Cryptography;
using System.Text;

namespace ProxyOrleans.Inference.Tokenization;

/// <summary>How two tokenizers' vocabularies relate, id by id.</summary>
/// <param name="SharedCount">Ids present in both (min of the two sizes).</param>
/// <param name="MismatchCount">Ids below <paramref name="SharedCount"/> whose token strings differ.</param>
/// <param name="FirstMismatchId">The first such id, or null.</param>
/// <param name="ExtraInFirst">Ids the first tokenizer has beyond the second's size (e.g. an added pad token).</param>
public sealed record VocabularyComparison(int SharedCount, int MismatchCount, int? FirstMismatchId,
    string? FirstMismatchFirst, string? FirstMismatchSecond, int ExtraInFirst, int ExtraInSecond)
{
    /// <summary>Same token for every shared id (a few extra ids on one side are allowed, as the reference truncates them).</summary>
    public bool SharedIdsMatch => MismatchCount == 0;

    public string Describe() => MismatchCount == 0
        ? $"vocabularies agree on all {SharedCount} shared ids (extra ids: {ExtraInFirst} in the first, {ExtraInSecond} in the second)"
        : $"{MismatchCount} of {SharedCount} shared ids differ; first at id {FirstMismatchId}: '{FirstMismatchFirst}' vs '{FirstMismatchSecond}'";
}

/// <summary>Checks that models share one vocabulary (every sampled id is appended to all of them).</summary>
public static class TokenizerVocabulary
{
    /// <summary>Token strings of ids 0..count-1 (count defaults to VocabSize); null where an id has no token.</summary>
    public static string?[] Tokens(ITextTokenizer tokenizer, int? count = null)
    {
        int n = count ?? tokenizer.VocabSize;
        var tokens = new string?[n];
        for (int id = 0; id < n; id++) tokens[id] = id < tokenizer.VocabSize ? tokenizer.IdToToken(id) : null;
        return tokens;
    }

    /// <summary>
    /// SHA-256 (hex) over the token strings of ids 0..count-1, in id order: equal fingerprints mean the same
    /// vocabulary, so silos can compare models without shipping vocabularies. Pass the base model's size as
    /// <paramref name="count"/> to ignore a few extra ids at the end.
    /// </summary>
    public static string Fingerprint(ITextTokenizer tokenizer, int? count = null)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> length = stackalloc byte[4];
        foreach (string? token in Tokens(tokenizer, count))
        {
            byte[] bytes = token is null ? [] : Encoding.UTF8.GetBytes(token);
            // Length-prefixed (-1 for "no token") so that ["ab","c"] and ["a","bc"] differ.
            System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(length, token is null ? -1 : bytes.Length);
            hash.AppendData(length);
            hash.AppendData(bytes);
        }
        return Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
    }

    public static VocabularyComparison Compare(ITextTokenizer first, ITextTokenizer second)
    {
        int shared = Math.Min(first.VocabSize, second.VocabSize);
        int mismatches = 0;
        int? firstId = null;
        string? a = null, b = null;
        for (int id = 0; id < shared; id++)
        {
            string? x = first.IdToToken(id), y = second.IdToToken(id);
            if (x == y) continue;
            if (mismatches++ == 0) { firstId = id; a = x; b = y; }
        }
        return new VocabularyComparison(shared, mismatches, firstId, a, b,
            first.VocabSize - shared, second.VocabSize - shared);
    }
}
