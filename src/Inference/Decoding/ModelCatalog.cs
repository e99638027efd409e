using System.Text;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Inference.Decoding;

/// <summary>A model ready to decode: its logits, its tokenizer and its config.json, under the name it was asked by.</summary>
public sealed class LoadedModel(string name, string directory, ILogitsModel model, ITextTokenizer tokenizer, LlamaConfig config) : IDisposable
{
    public string Name { get; } = name;
    public string Directory { get; } = directory;
    public ILogitsModel Model { get; } = model;
    public ITextTokenizer Tokenizer { get; } = tokenizer;
    public LlamaConfig Config { get; } = config;
    public void Dispose() => Model.Dispose();
}

/// <summary>A model name and its Hugging Face directory (configuration: ProxyOrleans:Models:i:Name / :Path).</summary>
public sealed record ModelSource(string Name, string Path);

/// <summary>
/// Resolves model names to HF directories and loads each model once (weights through the model loader,
/// tokenizer through the tokenizer loader). Names come from configured sources and, unless turned off,
/// from the bundled demo models in models/demo/&lt;name&gt;/ found above the application's directory.
/// </summary>
public sealed class ModelCatalog : IDisposable
{
    /// <summary>Loads an <see cref="ILogitsModel"/> from (directory, name).</summary>
    public delegate ILogitsModel ModelLoader(string directory, string name);

    /// <summary>Loads a tokenizer from a model directory.</summary>
    public delegate ITextTokenizer TokenizerLoader(string directory);

    private readonly Dictionary<string, string> directories = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Lazy<LoadedModel>> loaded = new(StringComparer.Ordinal);
    private readonly HashSet<string> checkedCombinations = [];
    private readonly ModelLoader loadModel;
    private readonly TokenizerLoader loadTokenizer;
    private readonly object gate = new();

    /// <param name="sources">Configured models (override demo models of the same name).</param>
    /// <param name="loadModel">The weights loader; default <see cref="LlamaInferenceModel.Load"/>.</param>
    /// <param name="loadTokenizer">The tokenizer loader; default <see cref="Tokenization.TokenizerLoader.Load"/>.</param>
    /// <param name="includeDemoModels">Also offer models/demo/&lt;name&gt; found above the application directory.</param>
    public ModelCatalog(IEnumerable<ModelSource>? sources = null, ModelLoader? loadModel = null, TokenizerLoader? loadTokenizer = null,
        bool includeDemoModels = true)
    {
        this.loadModel = loadModel ?? DefaultModelLoader;
        this.loadTokenizer = loadTokenizer ?? (dir => Tokenization.TokenizerLoader.Load(dir));
        if (includeDemoModels && FindDemoModelsDirectory() is string demo)
            foreach (var dir in System.IO.Directory.GetDirectories(demo).Order(StringComparer.Ordinal))
                if (File.Exists(Path.Combine(dir, "config.json"))) directories[Path.GetFileName(dir)] = dir;
        foreach (var source in sources ?? [])
        {
            if (string.IsNullOrWhiteSpace(source.Name))
                throw new ArgumentException($"A configured model (path '{source.Path}') has no name.");
            if (!System.IO.Directory.Exists(source.Path))
                throw new DirectoryNotFoundException($"Model '{source.Name}': directory '{source.Path}' does not exist.");
            directories[source.Name] = Path.GetFullPath(source.Path); // configuration overrides a demo model of the same name
        }
    }

    /// <summary>The inference model (KV cache, CPU-tuned weights) on the CPU, served under the given name.</summary>
    public static ILogitsModel DefaultModelLoader(string directory, string name) =>
        LlamaInferenceModel.Load(directory, new InferenceOptions { Name = name });

    /// <summary>The directory models/demo above <see cref="AppContext.BaseDirectory"/>, or null.</summary>
    public static string? FindDemoModelsDirectory(string? start = null)
    {
        for (var dir = new DirectoryInfo(start ?? AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "models", "demo");
            if (System.IO.Directory.Exists(candidate)) return candidate;
        }
        return null;
    }

    public IReadOnlyCollection<string> Names => directories.Keys;

    public bool Contains(string name) => directories.ContainsKey(name);

    public string DirectoryOf(string name) => directories.TryGetValue(name, out var dir) ? dir
        : throw new KeyNotFoundException($"Unknown model '{name}'. Known models: " +
            (directories.Count == 0 ? "none (configure ProxyOrleans:Models or train the demo models)" : string.Join(", ", directories.Keys.Order(StringComparer.Ordinal))) + ".");

    /// <summary>The model, loaded on first use (once, even when asked concurrently).</summary>
    public LoadedModel Get(string name)
    {
        string dir = DirectoryOf(name);
        Lazy<LoadedModel> lazy;
        lock (gate)
        {
            if (!loaded.TryGetValue(name, out lazy!))
                loaded[name] = lazy = new Lazy<LoadedModel>(() => Load(name, dir), LazyThreadSafetyMode.ExecutionAndPublication);
        }
        return lazy.Value;
    }

    /// <summary>Loads a model directory under a name, outside any catalog (with the given loaders).</summary>
    public LoadedModel Load(string name, string directory)
    {
        var config = LlamaConfig.Load(directory);
        var tokenizer = loadTokenizer(directory);
        var model = loadModel(directory, name);
        try
        {
            if (tokenizer.VocabSize > model.VocabSize)
                throw new InvalidDataException(
                    $"Model '{name}' ({directory}): the tokenizer has {tokenizer.VocabSize} tokens but the model only {model.VocabSize} logits; " +
                    "the tokenizer files do not belong to these weights.");
            return new LoadedModel(name, directory, model, tokenizer, config);
        }
        catch { model.Dispose(); throw; }
    }

    /// <summary>Loads the combination's models and checks that they share a vocabulary (once per combination).</summary>
    public void CheckCombination(ProxyCombination combination)
    {
        string key = combination.Base + "|" + string.Join("|", combination.Experts.Select(p => p.Expert + "~" + p.AntiExpert));
        lock (gate) if (checkedCombinations.Contains(key)) return;
        var baseModel = Get(combination.Base);
        foreach (var pair in combination.Experts)
        {
            VocabularyCheck.Ensure(baseModel, Get(pair.Expert), "expert");
            VocabularyCheck.Ensure(baseModel, Get(pair.AntiExpert), "anti-expert");
        }
        lock (gate) checkedCombinations.Add(key);
    }

    public void Dispose()
    {
        lock (gate)
        {
            foreach (var lazy in loaded.Values) if (lazy.IsValueCreated) lazy.Value.Dispose();
            loaded.Clear();
        }
    }
}

/// <summary>
/// Every sampled id is appended to every model, so all models of a combination must share one vocabulary.
/// An expert (or anti-expert) may have a few extra tokens after the base's (its logits are truncated, as the
/// reference does); anything else is refused with what differs.
/// </summary>
public static class VocabularyCheck
{
    /// <summary>How many extra ids beyond the base's vocabulary count as "a few added tokens".</summary>
    public const int MaxExtraTokens = 128;

    private static readonly string[] Probes =
    [
        "Hello world", "The quick brown fox jumps over the lazy dog.", "Question: What is 12 + 30? Answer: 42",
        "  indented\n\tline\r\n", "naïve café, Zürich — 東京 🙂",
    ];

    public static void Ensure(LoadedModel baseModel, LoadedModel other, string role) =>
        Ensure(baseModel.Name, baseModel.Model.VocabSize, baseModel.Tokenizer, other.Name, other.Model.VocabSize, other.Tokenizer, role);

    /// <summary>The same check from names, logits counts and tokenizers (the Orleans coordinator, whose models live elsewhere).</summary>
    public static void Ensure(string baseName, int baseLogits, ITextTokenizer a, string otherName, int otherLogits, ITextTokenizer b, string role)
    {
        string Who() => $"Base '{baseName}' and {role} '{otherName}'";
        const string Fix = " Proxy-tuning needs models that share the base's tokenizer (same ids for the same tokens).";

        if (otherLogits < baseLogits)
            throw new InvalidOperationException($"{Who()} do not share a vocabulary: the {role} has {otherLogits} logits, fewer than the base's {baseLogits}." + Fix);
        if (otherLogits - baseLogits > MaxExtraTokens)
            throw new InvalidOperationException(
                $"{Who()} do not share a vocabulary: the {role} has {otherLogits} logits, {otherLogits - baseLogits} more than the base's {baseLogits} " +
                $"(at most {MaxExtraTokens} extra tokens are truncated)." + Fix);

        if (a.BosTokenId != b.BosTokenId || a.EosTokenId != b.EosTokenId)
            throw new InvalidOperationException(
                $"{Who()} do not share a vocabulary: BOS/EOS ids are {a.BosTokenId?.ToString() ?? "none"}/{a.EosTokenId?.ToString() ?? "none"} " +
                $"vs {b.BosTokenId?.ToString() ?? "none"}/{b.EosTokenId?.ToString() ?? "none"}." + Fix);
        if (b.VocabSize < a.VocabSize || b.VocabSize - a.VocabSize > MaxExtraTokens)
            throw new InvalidOperationException(
                $"{Who()} do not share a vocabulary: their tokenizers have {a.VocabSize} and {b.VocabSize} tokens." + Fix);

        var comparison = TokenizerVocabulary.Compare(a, b);
        if (!comparison.SharedIdsMatch)
            throw new InvalidOperationException(
                $"{Who()} do not share a vocabulary: {comparison.MismatchCount} of {comparison.SharedCount} ids differ; token " +
                $"{comparison.FirstMismatchId} is {Quote(comparison.FirstMismatchFirst)} for the base but {Quote(comparison.FirstMismatchSecond)} for the {role}." + Fix);
        // Same tokens, but the same text must also split the same way (BPE merges, SentencePiece scores).
        foreach (string probe in Probes)
        {
            int[] ia = a.Encode(probe, addBos: false), ib = b.Encode(probe, addBos: false);
            if (!ia.AsSpan().SequenceEqual(ib))
                throw new InvalidOperationException(
                    $"{Who()} do not share a vocabulary: {Quote(probe)} encodes to [{string.Join(", ", ia)}] for the base but " +
                    $"[{string.Join(", ", ib)}] for the {role}." + Fix);
        }
    }

    /// <summary>
    /// A digest of everything <see cref="Ensure(string, int, ITextTokenizer, string, int, ITextTokenizer, string)"/>
    /// compares: every token string in id order, BOS and EOS, and the probe encodings. Two tokenizers with equal
    /// fingerprints pass the check against each other (given equal logits counts), so silos compare fingerprints and
    /// ship tokenizer files only when they differ, to say what differs.
    /// </summary>
    public static string Fingerprint(ITextTokenizer tokenizer)
    {
        var text = new StringBuilder();
        text.Append(TokenizerVocabulary.Fingerprint(tokenizer)).Append('|').Append(tokenizer.BosTokenId).Append('|').Append(tokenizer.EosTokenId);
        foreach (string probe in Probes) text.Append('|').AppendJoin(',', tokenizer.Encode(probe, addBos: false));
        return Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString()))).ToLowerInvariant();
    }

    private static string Quote(string? s) => s is null ? "(none)" : "\"" + s.Replace("\n", "\\n").Replace("\t", "\\t").Replace("\r", "\\r") + "\"";
}
