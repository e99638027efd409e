namespace ProxyOrleans.Inference.Tokenization;

/// <summary>Loads a model directory's tokenizer (HF layout) as an <see cref="ITextTokenizer"/>.</summary>
public static class TokenizerLoader
{
    /// <summary>
    /// tokenizer.model (SentencePiece) is used when present, else tokenizer.json (byte-level BPE, or SentencePiece-style
    /// BPE with byte_fallback as Llama 2 / Gemma 3 ship it); tokenizer_config.json,
    /// config.json and generation_config.json add BOS/EOS, added tokens and the chat template.
    /// </summary>
    /// <param name="modelDir">The model directory.</param>
    /// <param name="chatTemplate">
    /// null or "auto": the model's own Jinja template, rendered as HF does: chat_template.jinja when the directory has
    /// one (as transformers prefers it), else tokenizer_config.json's chat_template (no template if neither);
    /// "none": no template; "llama2" / "llama3" / "chatml": that built-in family, whatever the files say.
    /// </param>
    public static TextTokenizerBase Load(string modelDir, string? chatTemplate = null)
    {
        ArgumentNullException.ThrowIfNull(modelDir);
        if (!Directory.Exists(modelDir))
            throw new DirectoryNotFoundException($"Model directory '{modelDir}' does not exist. Pass the directory that holds config.json and the tokenizer files.");

        string spPath = Path.Combine(modelDir, "tokenizer.model");
        string jsonPath = Path.Combine(modelDir, "tokenizer.json");
        bool hasSp = File.Exists(spPath), hasJson = File.Exists(jsonPath);
        if (!hasSp && !hasJson)
            throw new FileNotFoundException(
                $"No tokenizer in '{modelDir}': expected tokenizer.model (SentencePiece: Llama 2, Mistral) or tokenizer.json " +
                "(byte-level BPE: Llama 3, Qwen2). Copy the tokenizer files from the model's Hugging Face repository into the directory.",
                jsonPath);

        var config = TokenizerConfig.Load(modelDir);
        var factory = ChatTemplateFactory(config, chatTemplate, modelDir);
        if (hasSp) return SentencePieceTextTokenizer.FromFile(spPath, config, factory);
        var root = HfJson.ReadObject(jsonPath);
        return SentencePieceBpeTextTokenizer.IsSentencePieceStyle(root)
            ? SentencePieceBpeTextTokenizer.FromJson(root, config, factory, jsonPath)
            : ByteLevelBpeTextTokenizer.FromParsed(root, config, factory, jsonPath);
    }

    private static Func<ITextTokenizer, IChatTemplate?> ChatTemplateFactory(TokenizerConfig config, string? name, string modelDir)
    {
        string choice = string.IsNullOrWhiteSpace(name) ? "auto" : name.Trim().ToLowerInvariant();
        if (choice == "none") return _ => null;
        if (choice != "auto")
        {
            var named = ChatTemplates.ByName(choice, config.BosToken, config.EosToken); // throws now for an unknown name
            return _ => named;
        }
        string jinjaFile = Path.Combine(modelDir, "chat_template.jinja");
        var (jinja, source) = File.Exists(jinjaFile)
            ? (File.ReadAllText(jinjaFile), jinjaFile)
            : (config.ChatTemplate, Path.Combine(modelDir, "tokenizer_config.json"));
        if (jinja is null) return _ => null;
        // Parsed on first use, so a model that never chats loads even with a template the renderer cannot handle.
        return _ => ChatTemplates.FromJinja(jinja, config.BosToken, config.EosToken, source);
    }
}
