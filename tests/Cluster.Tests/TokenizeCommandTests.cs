using ProxyOrleans.Client.Commands;
using Xunit;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>`proxyorleans tokenize` works on a model directory alone (no cluster).</summary>
public class TokenizeCommandTests
{
    private static string Llama2Dir() => ProxyOrleans.TestSupport.TestEnvironment.SharedData("llama2-tokenizer");

    private static (int Code, string Out, string Err) Run(string model, string? text = null, string? ids = null,
        bool special = false, bool chat = false, string? template = null)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = TokenizeCommand.Run(model, text, ids, noBos: false, special, chat, template, output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void Text_gives_ids_and_tokens()
    {
        var (code, output, _) = Run(Llama2Dir(), text: "Hello world");
        Assert.Equal(0, code);
        Assert.Contains("ids (3): 1,15043,3186", output);
        Assert.Contains("▁world", output);
        Assert.Contains("sentencepiece, vocab 32000", output);
    }

    [Fact]
    public void Ids_give_text()
    {
        var (code, output, _) = Run(Llama2Dir(), ids: "1,15043,3186,29871,243,162,157,131");
        Assert.Equal(0, code);
        Assert.EndsWith("Hello world 🚀" + Environment.NewLine, output);
    }

    [Fact]
    public void Chat_renders_the_template_first()
    {
        var (code, output, _) = Run(Llama2Dir(), text: "Hi", chat: true, template: "llama2");
        Assert.Equal(0, code);
        Assert.Contains("prompt: \"<s>[INST] Hi [/INST]\"", output);
        Assert.Contains("ids (9): 1,518,25580,29962,6324,518,29914,25580,29962", output);
    }

    [Fact]
    public void Bad_input_is_a_clear_error()
    {
        Assert.Equal(2, Run(Llama2Dir()).Code);
        var (code, _, err) = Run(Llama2Dir(), ids: "1,x");
        Assert.Equal(2, code);
        Assert.Contains("--ids", err);
        (code, _, err) = Run("/nonexistent/model", text: "x");
        Assert.Equal(1, code);
        Assert.Contains("/nonexistent/model", err);
        (code, _, err) = Run(Llama2Dir(), ids: "99999");
        Assert.Equal(1, code);
        Assert.Contains("99999", err);
    }
}
