using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using ProxyOrleans.Inference.Models;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Client.Commands;

/// <summary>
/// <c>proxyorleans logits --model DIR --ids 1,2,3 [--top 5] [--all-positions] [--full]</c>: runs the model in
/// this process (no cluster) and prints, as JSON, the next-token logits' top tokens per position.
/// </summary>
public static class LogitsCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "Model directory (config.json + model.safetensors)", Required = true };
        var ids = new Option<string>("--ids") { Description = "Comma-separated input token ids, e.g. 1,15043,3186", Required = true };
        var top = new Option<int>("--top") { Description = "Top tokens to list per position", DefaultValueFactory = _ => 5 };
        var all = new Option<bool>("--all-positions") { Description = "Every position's next-token logits, not only the last" };
        var full = new Option<bool>("--full") { Description = "Also print the whole logits vector of each position" };
        var threads = new Option<int>("--threads") { Description = "CPU threads (0: torch's default)" };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var command = new Command("logits", "Next-token logits of a model directory for given token ids, as JSON (no cluster needed)")
        {
            model, ids, top, all, full, threads, device,
        };
        command.SetAction(p => Run(p.GetValue(model)!, p.GetValue(ids)!, p.GetValue(top), p.GetValue(all), p.GetValue(full),
            new InferenceOptions { Threads = p.GetValue(threads), Device = p.GetValue(device)! }, Console.Out, Console.Error));
        return command;
    }

    public static int Run(string modelDir, string ids, int top, bool allPositions, bool full, InferenceOptions options,
        TextWriter output, TextWriter error)
    {
        int[] input;
        try { input = ids.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray(); }
        catch (FormatException) { error.WriteLine($"--ids must be comma-separated integers, got '{ids}'."); return 2; }
        if (input.Length == 0) { error.WriteLine("--ids needs at least one token id."); return 2; }
        if (top < 0) { error.WriteLine("--top must be 0 or more."); return 2; }

        LlamaInferenceModel model;
        try { model = LlamaInferenceModel.Load(modelDir, options); }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or ArgumentException)
        {
            error.WriteLine(e.Message);
            return 1;
        }
        using var _ = model;
        ITextTokenizer? tokenizer = null;
        try { tokenizer = TokenizerLoader.Load(modelDir); }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException) { /* ids only */ }

        int v = model.VocabSize;
        var rows = new List<(int position, float[] logits)>();
        try
        {
            using var session = model.CreateSession(Math.Min(input.Length, model.MaxSequenceLength));
            if (allPositions)
                for (int t = 0; t < input.Length; t++)
                {
                    var l = new float[v];
                    session.Append(input.AsSpan(t, 1), l);
                    rows.Add((t, l));
                }
            else
            {
                var l = new float[v];
                session.Append(input, l);
                rows.Add((input.Length - 1, l));
            }
        }
        catch (Exception e) when (e is ArgumentOutOfRangeException or ContextLengthExceededException)
        {
            error.WriteLine(e.Message);
            return 1;
        }

        var buffer = new MemoryStream();
        using var json = new Utf8JsonWriter(buffer, new JsonWriterOptions
        {
            Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        });
        json.WriteStartObject();
        json.WriteString("model", model.Name);
        json.WriteNumber("vocab_size", v);
        json.WriteStartArray("ids");
        foreach (int id in input) json.WriteNumberValue(id);
        json.WriteEndArray();
        json.WriteStartArray("positions");
        foreach (var (position, logits) in rows)
        {
            json.WriteStartObject();
            json.WriteNumber("position", position);
            json.WriteNumber("input_id", input[position]);
            if (tokenizer?.IdToToken(input[position]) is string token) json.WriteString("input_token", token);
            // Softmax in double for the probabilities of the listed tokens.
            double max = logits.Max(), sum = logits.Sum(x => Math.Exp(x - max));
            json.WriteStartArray("top");
            foreach (int id in Enumerable.Range(0, v).OrderByDescending(i => logits[i]).Take(top))
            {
                json.WriteStartObject();
                json.WriteNumber("id", id);
                if (tokenizer?.IdToToken(id) is string t) json.WriteString("token", t);
                json.WriteNumber("logit", logits[id]);
                json.WriteNumber("prob", Math.Round(Math.Exp(logits[id] - max) / sum, 6));
                json.WriteEndObject();
            }
            json.WriteEndArray();
            if (full)
            {
                json.WriteStartArray("logits");
                foreach (float x in logits) json.WriteNumberValue(x);
                json.WriteEndArray();
            }
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteEndObject();
        json.Flush();
        output.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
        return 0;
    }
}
