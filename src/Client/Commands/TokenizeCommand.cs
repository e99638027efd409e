using System.CommandLine;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Client.Commands;

/// <summary>
/// <c>proxyorleans tokenize --model DIR --text "..."</c> prints ids and their tokens;
/// <c>--ids 1,2,3</c> prints the text. Needs only the model directory, no cluster.
/// </summary>
public static class TokenizeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "Model directory (tokenizer.model or tokenizer.json, tokenizer_config.json)", Required = true };
        var text = new Option<string?>("--text", "-t") { Description = "Text to encode" };
        var ids = new Option<string?>("--ids") { Description = "Comma-separated token ids to decode, e.g. 1,15043,3186" };
        var noBos = new Option<bool>("--no-bos") { Description = "Do not add the BOS token when encoding" };
        var special = new Option<bool>("--special") { Description = "Encode: parse special tokens written in the text (<s>, <|im_start|>). Decode: keep special tokens" };
        var chat = new Option<bool>("--chat") { Description = "Render --text as one user turn with the model's chat template first (as the expert sees it)" };
        var template = new Option<string?>("--chat-template") { Description = "Chat template to use instead of tokenizer_config.json's: llama2, llama3, chatml" };

        var command = new Command("tokenize", "Text to token ids and ids to text for a model directory (no cluster needed)")
        {
            model, text, ids, noBos, special, chat, template,
        };
        command.SetAction(parse => Run(parse.GetValue(model)!, parse.GetValue(text), parse.GetValue(ids), parse.GetValue(noBos),
            parse.GetValue(special), parse.GetValue(chat), parse.GetValue(template), Console.Out, Console.Error));
        return command;
    }

    public static int Run(string modelDir, string? text, string? ids, bool noBos, bool special, bool chat, string? chatTemplate,
        TextWriter output, TextWriter error)
    {
        if ((text is null) == (ids is null))
        {
            error.WriteLine("Give exactly one of --text \"...\" (to encode) or --ids 1,2,3 (to decode).");
            return 2;
        }
        TextTokenizerBase tokenizer;
        try
        {
            tokenizer = TokenizerLoader.Load(modelDir, chatTemplate);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException)
        {
            error.WriteLine(e.Message);
            return 1;
        }
        output.WriteLine($"tokenizer: {tokenizer.Kind}, vocab {tokenizer.VocabSize}, bos {Show(tokenizer.BosTokenId)}, " +
                         $"eos {string.Join(",", tokenizer.EosTokenIds)}, chat template {TemplateName(tokenizer)}");

        if (ids is not null)
        {
            int[] parsed;
            try
            {
                parsed = ids.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
            }
            catch (FormatException)
            {
                error.WriteLine($"--ids must be comma-separated integers, got '{ids}'.");
                return 2;
            }
            try
            {
                output.WriteLine(tokenizer.Decode(parsed, skipSpecialTokens: !special));
            }
            catch (ArgumentOutOfRangeException e)
            {
                error.WriteLine(e.Message);
                return 1;
            }
            return 0;
        }

        string input = text!;
        bool parseSpecial = special, addBos = !noBos;
        if (chat)
        {
            IChatTemplate? t;
            try { t = tokenizer.ChatTemplate; }
            catch (InvalidDataException e) { error.WriteLine(e.Message); return 1; }
            if (t is null)
            {
                error.WriteLine($"The model in '{modelDir}' has no chat template; pass --chat-template llama2|llama3|chatml.");
                return 1;
            }
            // As HF's apply_chat_template(tokenize=True): the rendered text carries its own BOS and special tokens.
            input = t.Render([new ChatMessage("user", input)]);
            parseSpecial = true;
            addBos = false; // as EncodeChat / HF apply_chat_template: the template writes its own BOS
            output.WriteLine("prompt: " + System.Text.Json.JsonSerializer.Serialize(input, new System.Text.Json.JsonSerializerOptions
            {
                Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            }));
        }
        int[] encoded = tokenizer.Encode(input, addBos, parseSpecial);
        output.WriteLine($"ids ({encoded.Length}): {string.Join(",", encoded)}");
        foreach (int id in encoded)
            output.WriteLine($"{id,8}  {Visible(tokenizer.IdToToken(id))}");
        return 0;
    }

    private static string Show(int? id) => id?.ToString() ?? "none";

    private static string TemplateName(ITextTokenizer t)
    {
        try { return t.ChatTemplate?.Name ?? "none"; }
        catch (InvalidDataException) { return "unknown (configure one)"; }
    }

    // Tokens may hold newlines or tabs (SentencePiece byte pieces are already written <0x0A>).
    private static string Visible(string? token) =>
        token is null ? "(none)" : token.Replace("\n", "\\n").Replace("\t", "\\t").Replace("\r", "\\r");
}
