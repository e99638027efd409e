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
}
