// The shared test support (tests/TestSupport): tiny-model factory, in-process cluster, host processes.
global using ProxyOrleans.TestSupport;
using System.Runtime.CompilerServices;
using ProxyOrleans.Abstractions;
using ProxyOrleans.Grains;
using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Runtime;
using ProxyOrleans.Inference.Tokenization;
using TorchSharp;
using Xunit;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace ProxyOrleans.Cluster.Tests;

/// <summary>
/// A trio of tiny real Llama checkpoints (seeded random weights, HF layout, the Llama-2 SentencePiece tokenizer;
/// the expert has the Llama-2 chat template), written once per machine and reused by every test and process.
/// </summary>
public static class TinyTrio
{
    public const string Base = "tiny-base", Expert = "tiny-expert", Anti = "tiny-anti";
    private const string Version = "v2";
    private static readonly Lazy<Dictionary<string, string>> Dirs = new(Create);

    public static string Dir(string name) => Dirs.Value[name];

    /// <summary>The folder of any tiny model here, the trio's or <see cref="Alien"/> or <see cref="Extra"/>.</summary>
    public static string PathOf(string name) => name switch { Alien => AlienPath, Extra => ExtraPath, _ => Dir(name) };
    public static (string Name, string Path) Model(string name) => (name, Dir(name));

    public static CombinationSpec Spec(float alpha = 1f) => new(Base, [new ExpertSpec(Expert, Anti)], alpha);
    public static ProxyCombination Combination(float alpha = 1f) => new(Base, [new ExpertPair(Expert, Anti)], alpha);

    private static Dictionary<string, string> Create()
    {
        var result = new Dictionary<string, string>();
        int seed = 11;
        foreach (var name in new[] { Base, Expert, Anti })
        {
            seed += 10;
            var modelSeed = seed;
            result[name] = WrittenOnce(name, dir =>
            {
                // std 0.3: large enough that the top tokens are well separated.
                TinyHfModels.SaveWeights(TinyHfModels.Config(vocabSize: 32000, maxPos: 256, bosId: 1, eosId: 2, intermediateSize: 128), dir, modelSeed, std: 0.3);
                TinyHfModels.WriteLlama2Tokenizer(dir, name == Expert
                    ? "\"{% if messages[0]['role'] == 'system' %}<<SYS>>{% endif %}{% for message in messages %}{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}{% endfor %}\""
                    : null);
            });
        }
        return result;
    }

    /// <summary>
    /// A model folder under $TMPDIR/proxyorleans-cluster-tests/<see cref="Version"/>, kept between test runs: written
    /// only while its "done" marker is missing (the marker comes last, so a run cut mid-write writes it again).
    /// </summary>
    private static string WrittenOnce(string name, Action<string> write)
    {
        var dir = Path.Combine(Path.GetTempPath(), "proxyorleans-cluster-tests", Version, name);
        if (File.Exists(Path.Combine(dir, "done"))) return dir;
        write(dir);
        File.WriteAllText(Path.Combine(dir, "done"), "");
        return dir;
    }

    public const string Alien = "tiny-alien";
    private static readonly Lazy<string> AlienDir = new(CreateAlien);

    /// <summary>
    /// The anti-expert's weights (same 32000 logits) with a different tokenizer (a small byte-level BPE): the logits
    /// count matches the trio's, the vocabulary does not.
    /// </summary>
    public static string AlienPath => AlienDir.Value;

    private static string CreateAlien() => WrittenOnce(Alien, dir =>
    {
        Directory.CreateDirectory(dir);
        foreach (var f in new[] { "config.json", "model.safetensors" }) File.Copy(Path.Combine(Dir(Anti), f), Path.Combine(dir, f), overwrite: true);
        TinyHfModels.WriteByteLevelTokenizer(dir, ["t|h", "th|e", "e| ", "i|n"], ["<s>", "</s>"],
            new ByteLevelBpeFileOptions { BosToken = "<s>", EosToken = "</s>", AddBosToken = true });
    });

    public const string Extra = "tiny-extra";
    private static readonly Lazy<string> ExtraDir = new(CreateExtra);

    /// <summary>An expert whose tokenizer adds two special tokens (32002 logits): allowed, the extra logits are truncated.</summary>
    public static string ExtraPath => ExtraDir.Value;

    private static string CreateExtra() => WrittenOnce(Extra, dir =>
    {
        TinyHfModels.SaveWeights(TinyHfModels.Config(vocabSize: 32002, maxPos: 256, bosId: 1, eosId: 2, intermediateSize: 128), dir, 77, std: 0.3);
        TinyHfModels.WriteLlama2Tokenizer(dir, addedTokens: ["<pad>", "<|sep|>"]);
    });

    /// <summary>The base checkpoint loaded as a silo loads it (default options), under <paramref name="name"/>.</summary>
    public static LoadedModel LoadBase(string name) =>
        new ProxyOrleans.Grains.Models.CatalogModelLoader(Microsoft.Extensions.Options.Options.Create(new ProxyOrleans.Grains.Hosting.ProxyOrleansOptions())).Load(name, Dir(Base));

    /// <summary>A model worker over <paramref name="model"/> (the base's folder), driven directly by a test: this batch
    /// window, budget and largest batch, a one-minute idle timeout.</summary>
    public static ProxyOrleans.Grains.Models.ModelWorker Worker(LoadedModel model, TimeSpan batchWindow, long budgetBytes = 1L << 30, int maxBatch = 8) =>
        new(model.Name, Dir(Base), model, budgetBytes, batchWindow, maxBatch, TimeSpan.FromMinutes(1), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);

    /// <summary>The single-process path over the same checkpoints.</summary>
    public static ModelCatalog NewCatalog() => new(
        [new ModelSource(Base, Dir(Base)), new ModelSource(Expert, Dir(Expert)), new ModelSource(Anti, Dir(Anti)), new ModelSource(Extra, ExtraPath)],
        (dir, name) => LlamaInferenceModel.Load(dir, new InferenceOptions { Name = name }), dir => TokenizerLoader.Load(dir),
        includeDemoModels: false);

    private static readonly Lazy<ModelCatalog> SharedCatalog = new(NewCatalog);

    /// <summary>Tokens the single-process ProxyDecoder produces (greedy), with the spec's answer cue and response prefix.</summary>
    public static GenerationResult Reference(string prompt, int maxTokens, CombinationSpec? spec = null, bool chat = false)
    {
        var s = spec ?? Spec();
        return new ProxyDecoder(SharedCatalog.Value).Generate(s.ToCombination(), ReferencePrompt(prompt, s, chat), Greedy(maxTokens));
    }

    /// <summary>The prompt ids the single-process ProxyDecoder prefills: base, then expert and anti-expert per pair.</summary>
    public static IReadOnlyList<int[]> ReferencePromptIds(string prompt, CombinationSpec spec, bool chat = false) =>
        new ProxyDecoder(SharedCatalog.Value).Start(spec.ToCombination(), ReferencePrompt(prompt, spec, chat), Greedy(1)).PromptTokensByModel;

    /// <summary>The single-process ProxyDecoder with any sampling (seeded sampling, top-k, top-p, stop sequences).</summary>
    public static GenerationResult Reference(string prompt, SamplingSpec sampling, CombinationSpec? spec = null, DecodeOptions? decode = null)
    {
        var s = spec ?? Spec();
        return new ProxyDecoder(SharedCatalog.Value).Generate(s.ToCombination(), ReferencePrompt(prompt, s, false), sampling.ToSamplingOptions(), decode);
    }

    /// <summary>
    /// Seeded sampling with every logits processor on (bias, the three penalties, min-p) besides top-k and top-p: what the
    /// distributed-equals-single-process tests run. Token 450 is "▁The", 29889 "." in the Llama-2 vocabulary.
    /// </summary>
    public static SamplingSpec EveryProcessor(int maxTokens) => new()
    {
        Temperature = 0.9f, TopK = 50, TopP = 0.95f, Seed = 777, MaxNewTokens = maxTokens, StopAtEos = false,
        MinP = 0.02f, FrequencyPenalty = 0.7f, PresencePenalty = 0.3f, RepetitionPenalty = 1.25f,
        LogitBias = new() { [450] = 2.5f, [29889] = -100f },
    };

    private static ProxyPrompt ReferencePrompt(string prompt, CombinationSpec spec, bool chat) =>
        (chat ? ProxyPrompt.FromMessages([new ChatMessage("user", prompt)]) : ProxyPrompt.FromText(prompt))
        with { AnswerCue = spec.AnswerCue, ExpertResponsePrefix = spec.ExpertResponsePrefix };

    private static SamplingOptions Greedy(int maxTokens) => new() { Temperature = 0, MaxNewTokens = maxTokens, StopAtEos = false };

    public static GenerationRequest Request(string prompt, int maxTokens, CombinationSpec? spec = null) => new()
    {
        Combination = spec ?? Spec(), Prompt = prompt, TenantId = "test",
        Sampling = new SamplingSpec { Temperature = 0, MaxNewTokens = maxTokens, StopAtEos = false },
    };

    /// <summary>Per-step combined logits of the single-process path for a given token sequence (teacher-forced).</summary>
    public static List<float[]> ReferenceLogits(string prompt, int[] tokens)
    {
        var catalog = SharedCatalog.Value;
        var p = ProxyPrompt.FromText(prompt);
        var b = catalog.Get(Base); var e = catalog.Get(Expert); var a = catalog.Get(Anti);
        var rows = new List<(LoadedModel M, int[] Prompt)> { (b, p.PlainTokens(b.Tokenizer)), (e, p.ExpertTokens(e.Tokenizer)), (a, p.PlainTokens(a.Tokenizer)) };
        var sessions = rows.Select(r => r.M.Model.CreateSession(r.Prompt.Length + tokens.Length + 1)).ToList();
        var logits = rows.Select(r => new float[r.M.Model.VocabSize]).ToList();
        try
        {
            for (int m = 0; m < 3; m++) sessions[m].Append(rows[m].Prompt, logits[m]);
            var result = new List<float[]>();
            var combine = new ProxyStep(1f, [1f]);
            for (int step = 0; step <= tokens.Length; step++)
            {
                result.Add(combine.Combine(logits[0], [PairLogits.Of(logits[1], logits[2])]).ToArray());
                if (step == tokens.Length) break;
                for (int m = 0; m < 3; m++) sessions[m].Append([tokens[step]], logits[m]);
            }
            return result;
        }
        finally { foreach (var s in sessions) s.Dispose(); }
    }

    public static async Task<(int[] Tokens, string Text, List<TokenEvent> Events)> Collect(IAsyncEnumerable<TokenEvent> events, Func<TokenEvent, Task>? onEvent = null)
    {
        var list = new List<TokenEvent>();
        await foreach (var ev in events)
        {
            list.Add(ev);
            if (onEvent is not null) await onEvent(ev);
        }
        return (list.Where(e => e.TokenId >= 0).Select(e => e.TokenId).ToArray(), string.Concat(list.Select(e => e.Text)), list);
    }
}
