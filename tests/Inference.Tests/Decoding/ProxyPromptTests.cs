using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Tokenization;
using Xunit;

namespace ProxyOrleans.Inference.Tests.Decoding;

/// <summary>How each model of a combination sees the prompt: the answer cue, the response prefix, a tuned model alone.</summary>
public sealed class ProxyPromptTests : IDisposable
{
    private readonly TinyFamily family = new();
    private readonly ModelCatalog catalog;
    public ProxyPromptTests() => catalog = family.Catalog();
    public void Dispose() { catalog.Dispose(); family.Dispose(); }

    [Fact]
    public void The_cue_wraps_the_plain_text_and_the_prefix_follows_the_experts_template()
    {
        ITextTokenizer plain = catalog.Get("base").Tokenizer, chat = catalog.Get("expert").Tokenizer;
        var prompt = ProxyPrompt.FromText("what is the answer?") with { AnswerCue = ProxyPrompt.QuestionAnswerCue, ExpertResponsePrefix = "answer:" };

        Assert.Equal(plain.Encode("Question: what is the answer?\nAnswer:", addBos: true), prompt.PlainTokens(plain));
        string rendered = chat.ChatTemplate!.Render([new ChatMessage("user", "what is the answer?")], addGenerationPrompt: true);
        Assert.Equal(chat.Encode(rendered + "answer:", addBos: false, parseSpecialTokens: true), prompt.ExpertTokens(chat));
        // Without options: the plain text and the bare template, as before.
        var bare = ProxyPrompt.FromText("what is the answer?");
        Assert.Equal(plain.Encode("what is the answer?", addBos: true), bare.PlainTokens(plain));
        Assert.Equal(chat.Encode(rendered, addBos: false, parseSpecialTokens: true), bare.ExpertTokens(chat));
        // A tuned model served alone sees what an expert sees; a proxy-tuned base does not.
        Assert.Equal(prompt.PlainTokens(chat), prompt.BaseTokens(chat));
        Assert.Equal(prompt.ExpertTokens(chat), (prompt with { BaseChatTemplate = true }).BaseTokens(chat));
    }

    [Fact]
    public void A_cue_without_exactly_one_placeholder_is_refused_with_an_example()
    {
        var tokenizer = catalog.Get("base").Tokenizer;
        foreach (var cue in new[] { "Question: \nAnswer:", "{prompt} and {prompt}" })
        {
            var e = Assert.Throws<ArgumentException>(() => (ProxyPrompt.FromText("x") with { AnswerCue = cue }).PlainTokens(tokenizer));
            Assert.Contains("{prompt}", e.Message);
            Assert.Contains("exactly once", e.Message);
        }
    }

    [Fact]
    public void The_decoder_prefills_every_model_as_the_prompt_says()
    {
        var combination = new ProxyCombination("base", [new ExpertPair("expert", "anti")]);
        var prompt = ProxyPrompt.FromText("the cat") with { AnswerCue = "question: {prompt}\nanswer:", ExpertResponsePrefix = "answer:" };
        var generation = new ProxyDecoder(catalog).Start(combination, prompt, new SamplingOptions { MaxNewTokens = 2 });
        var ids = generation.PromptTokensByModel;
        Assert.Equal(prompt.PlainTokens(catalog.Get("base").Tokenizer), ids[0]);
        Assert.Equal(prompt.ExpertTokens(catalog.Get("expert").Tokenizer), ids[1]);
        Assert.Equal(prompt.PlainTokens(catalog.Get("anti").Tokenizer), ids[2]);
        Assert.NotEqual(ProxyPrompt.FromText("the cat").PlainTokens(catalog.Get("base").Tokenizer), ids[0]);
    }

    [Fact]
    public void Token_ids_are_read_as_given_by_the_base_and_decoded_into_the_experts_template()
    {
        ITextTokenizer plain = catalog.Get("base").Tokenizer, chat = catalog.Get("expert").Tokenizer;
        var ids = plain.Encode("the cat", addBos: true);
        var prompt = ProxyPrompt.FromTokenIds(ids) with { ExpertResponsePrefix = "answer:" };

        Assert.Equal(ids, prompt.PlainTokens(plain));
        // The expert's template renders the ids' text (its own BOS and markers), as it renders the same prompt sent as text.
        Assert.Equal((ProxyPrompt.FromText("the cat") with { ExpertResponsePrefix = "answer:" }).ExpertTokens(chat), prompt.ExpertTokens(chat));
        Assert.Equal(ids, (prompt with { ExpertChatTemplate = false }).ExpertTokens(chat));
        // The bare cue changes nothing; any other cue is refused, naming what to send instead.
        Assert.Equal(ids, (prompt with { AnswerCue = ProxyPrompt.PromptPlaceholder }).PlainTokens(plain));
        var cued = Assert.Throws<ArgumentException>(() => (prompt with { AnswerCue = ProxyPrompt.QuestionAnswerCue }).PlainTokens(plain));
        Assert.Contains("\"answer_cue\": \"{prompt}\"", cued.Message);
        var outside = Assert.Throws<ArgumentException>(() => ProxyPrompt.FromTokenIds([ids[0], plain.VocabSize]).PlainTokens(plain));
        Assert.Contains($"{plain.VocabSize} (at position 1) is outside the vocabulary", outside.Message);
        Assert.Throws<ArgumentException>(() => ProxyPrompt.FromTokenIds([]).PlainTokens(plain));
    }
}
