using ProxyOrleans.Inference.Tokenization;
using ProxyOrleans.Inference.Decoding;

namespace ProxyOrleans.Training.Data;

/// <summary>Token batches for training: inputs [batch, seq] and next-token labels (-100 = no loss).</summary>
public interface IBatchSource
{
    /// <summary>Fills <paramref name="inputs"/> and <paramref name="labels"/> (batch*seq each) for the given step.</summary>
    void Fill(int step, int batch, int seq, long[] inputs, long[] labels);
    /// <summary>Label positions that count in the loss, per batch (for tokens/s figures).</summary>
    string Describe();
}

/// <summary>Pretraining: random windows of one long token stream (documents joined by &lt;|endoftext|&gt;).</summary>
public sealed class StreamBatches(int[] stream, int seed) : IBatchSource
{
    public int[] Stream => stream;

    public void Fill(int step, int batch, int seq, long[] inputs, long[] labels) => Fill(step, batch, seq, inputs.AsSpan(), labels.AsSpan());

    public void Fill(int step, int batch, int seq, Span<long> inputs, Span<long> labels)
    {
        if (stream.Length < seq + 2) throw new InvalidOperationException($"Token stream ({stream.Length}) is shorter than one window ({seq + 1}).");
        // Randomness depends only on (seed, step): a run repeats exactly.
        var rng = new Random((int)CounterRng.Next((ulong)seed, step)); // process-independent, unlike HashCode
        for (int b = 0; b < batch; b++)
        {
            int offset = rng.Next(0, stream.Length - seq - 1);
            for (int t = 0; t < seq; t++)
            {
                inputs[b * seq + t] = stream[offset + t];
                labels[b * seq + t] = stream[offset + t + 1];
            }
        }
    }

    public string Describe() => $"{stream.Length:N0} tokens";
}

/// <summary>
/// Tuning: chat-formatted examples; the loss covers only the assistant's reply (its answer, the template's end-of-turn
/// token and the newline after it), as in supervised instruction tuning. Examples are visited in epochs (a fresh seeded order each
/// epoch). Each batch may end with rows of pretraining text (full loss), replayed so that tuning does not erase
/// what pretraining taught.
/// </summary>
public sealed class ChatBatches : IBatchSource
{
    readonly List<(int[] Ids, bool[] Train)> examples = new();
    readonly int seed;
    readonly int padId;
    readonly StreamBatches? replay;
    readonly int replayRows;

    /// <param name="tokenizer">The models' tokenizer as serving loads it (its chat template renders the prompt).</param>
    /// <param name="padId">Id that fills rows after an example (no loss there).</param>
    /// <param name="replay">Pretraining windows mixed into every batch (null: none).</param>
    /// <param name="replayRows">How many rows of each batch come from <paramref name="replay"/>.</param>
    public ChatBatches(ITextTokenizer tokenizer, IEnumerable<QaPair> pairs, int padId, int seed, StreamBatches? replay = null, int replayRows = 0)
    {
        this.seed = seed;
        this.padId = padId;
        this.replay = replay;
        this.replayRows = replay is null ? 0 : replayRows;
        var template = tokenizer.ChatTemplate ?? throw new InvalidOperationException("The tokenizer has no chat template to tune with.");
        string end = template.EndOfTurnToken ?? throw new InvalidOperationException($"Chat template '{template.Name}' names no end-of-turn token.");
        foreach (var p in pairs)
        {
            // Prompt and reply are tokenized apart, exactly as at inference (prompt prefilled, reply generated).
            int[] prompt = tokenizer.Encode(RenderPrompt(template, p.Prompt), addBos: false, parseSpecialTokens: true);
            int[] reply = tokenizer.Encode(p.Answer + end + "\n", addBos: false, parseSpecialTokens: true);
            examples.Add(([.. prompt, .. reply], [.. prompt.Select(_ => false), .. reply.Select(_ => true)]));
        }
        if (examples.Count == 0) throw new ArgumentException("No tuning examples.");
    }

    /// <summary>The expert's prompt: one user turn plus the generation prompt, as HF's apply_chat_template renders it.</summary>
    public static string RenderPrompt(IChatTemplate template, string userMessage) =>
        template.Render([new ChatMessage("user", userMessage)], addGenerationPrompt: true);

    public int Count => examples.Count;
    public int LongestExample => examples.Max(e => e.Ids.Length);

    /// <summary>Tuning steps for the given number of epochs over the examples at this batch size.</summary>
    public int StepsFor(double epochs, int batch) => (int)Math.Ceiling(epochs * examples.Count / Math.Max(1, batch - replayRows));

    public void Fill(int step, int batch, int seq, long[] inputs, long[] labels)
    {
        if (seq < LongestExample - 1) throw new ArgumentException($"seq {seq} is shorter than the longest example ({LongestExample - 1} positions).");
        int chatRows = batch - replayRows;
        if (chatRows < 1) throw new ArgumentException($"A batch of {batch} rows leaves no room for tuning examples after {replayRows} replay rows.");
        for (int b = 0; b < chatRows; b++)
        {
            // One example per row, from position 0, right-padded: exactly the context the model sees at inference.
            long k = (long)step * chatRows + b;
            WriteRow(examples[Order((int)(k / examples.Count))[(int)(k % examples.Count)]], b, seq, inputs, labels);
        }
        if (replayRows > 0)
            replay!.Fill(step, replayRows, seq, inputs.AsSpan(chatRows * seq), labels.AsSpan(chatRows * seq));
    }

    readonly Dictionary<int, int[]> orders = new();

    // The visiting order of one epoch, from (seed, epoch) only.
    int[] Order(int epoch)
    {
        if (orders.TryGetValue(epoch, out var order)) return order;
        order = Enumerable.Range(0, examples.Count).ToArray();
        new Random((int)CounterRng.Next((ulong)seed, epoch)).Shuffle(order);
        return orders[epoch] = order;
    }

    /// <summary>Every example once, padded to the longest (for validation losses).</summary>
    public (long[] Inputs, long[] Labels, int Rows, int Seq) All()
    {
        int seq = LongestExample - 1, rows = examples.Count;
        var inputs = new long[rows * seq];
        var labels = new long[rows * seq];
        for (int b = 0; b < rows; b++) WriteRow(examples[b], b, seq, inputs, labels);
        return (inputs, labels, rows, seq);
    }

    // One example in row `row`, right-padded; labels are the next token where the reply is trained, else -100.
    void WriteRow((int[] Ids, bool[] Train) example, int row, int seq, long[] inputs, long[] labels)
    {
        var (ids, train) = example;
        for (int t = 0; t < seq; t++)
        {
            inputs[row * seq + t] = t < ids.Length ? ids[t] : padId;
            labels[row * seq + t] = t + 1 < ids.Length && train[t + 1] ? ids[t + 1] : -100;
        }
    }

    public string Describe() => $"{examples.Count:N0} examples" + (replayRows > 0 ? $" + {replayRows} pretraining rows per batch" : "");
}
