using System.Text.Json.Nodes;
using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Tokenization;
using static TorchSharp.torch;

namespace ProxyOrleans.Training;

/// <summary>
/// `hfcompare FILE [--models DIR]`: compares what Hugging Face transformers computed on the bundled models
/// (scripts/hf_crosscheck.py, run where transformers is installed) with our tokenizer, our model and our
/// proxy-tuned decoder: token ids (plain and chat template), logits at every position, greedy proxy answers.
/// </summary>
public static class HfCompare
{
    public static int Run(string file, Dictionary<string, string> a)
    {
        string modelsDir = a.GetValueOrDefault("models") ?? ModelCatalog.FindDemoModelsDirectory(Environment.CurrentDirectory)
            ?? throw new DirectoryNotFoundException("No models/demo found: pass --models DIR.");
        var root = JsonNode.Parse(File.ReadAllText(file))!;
        Console.WriteLine($"reference: transformers {root["transformers"]}, torch {root["torch"]}");
        double worst = 0;
        int idCases = 0, idMatches = 0;
        foreach (var (name, entry) in root["models"]!.AsObject())
        {
            string dir = Path.Combine(modelsDir, name);
            using var model = LlamaForCausalLM.FromPretrained(dir);
            var tok = TokenizerLoader.Load(dir);
            double modelWorst = 0;
            foreach (var c in entry!["cases"]!.AsArray())
            {
                string prompt = c!["prompt"]!.GetValue<string>();
                bool chat = c["chat"]!.GetValue<bool>();
                int[] hfIds = c["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
                var p = ProxyPrompt.FromText(prompt);
                int[] ours = chat ? p.ExpertTokens(tok) : p.PlainTokens(tok);
                idCases++;
                if (ours.SequenceEqual(hfIds)) idMatches++;
                else Console.WriteLine($"  {name} ids differ for {(chat ? "chat" : "plain")} '{prompt}': ours [{string.Join(",", ours)}] hf [{string.Join(",", hfIds)}]");
                var hf = c["logits"]!.AsArray().SelectMany(row => row!.AsArray().Select(x => x!.GetValue<float>())).ToArray();
                using var _ = NewDisposeScope();
                using var __ = no_grad();
                var logits = model.forward(tensor(hfIds.Select(i => (long)i).ToArray(), [1, hfIds.Length])).reshape(-1).data<float>().ToArray();
                if (logits.Length != hf.Length) throw new InvalidDataException($"{name}: {logits.Length} logits vs {hf.Length} from transformers.");
                for (int i = 0; i < hf.Length; i++) modelWorst = Math.Max(modelWorst, Math.Abs(logits[i] - hf[i]));
            }
            Console.WriteLine($"  {name} ({entry["class"]}): max |Δlogit| {modelWorst:E2} over {entry["cases"]!.AsArray().Count} prompts, all positions");
            worst = Math.Max(worst, modelWorst);
        }

        int proxyCases = 0, proxyMatches = 0;
        var sources = Directory.GetDirectories(modelsDir).Where(d => File.Exists(Path.Combine(d, "config.json")))
            .Select(d => new ModelSource(Path.GetFileName(d), d));
        using var catalog = new ModelCatalog(sources, (d, n) => LlamaInferenceModel.Load(d, new InferenceOptions { Name = n }),
            d => TokenizerLoader.Load(d), includeDemoModels: false);
        var decoder = new ProxyDecoder(catalog);
        var combination = new ProxyCombination("base-large", [new ExpertPair("tuned-small", "base-small")], 1f);
        foreach (var q in root["proxy"]!.AsArray())
        {
            string prompt = q!["prompt"]!.GetValue<string>();
            int[] hfIds = q["ids"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
            var r = decoder.Generate(combination, prompt, new SamplingOptions { MaxNewTokens = 16 });
            proxyCases++;
            bool same = r.TokenIds.SequenceEqual(hfIds);
            if (same) proxyMatches++;
            Console.WriteLine($"  proxy {(same ? "same" : "DIFF")}: {prompt} -> ours '{r.Text}' / transformers '{q["text"]}'");
        }
        Console.WriteLine($"hf_max_abs_logit_diff={worst:E2} hf_ids_match={idMatches}/{idCases} hf_proxy_greedy_match={proxyMatches}/{proxyCases}");
        return worst < 1e-3 && idMatches == idCases && proxyMatches == proxyCases ? 0 : 3;
    }
}
