using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ProxyOrleans.Abstractions;
using ProxyOrleans.Grains.Hosting;
using ProxyOrleans.Grains.Models;
using ProxyOrleans.Inference.Tokenization;
using Xunit;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>ProxyOrleans:Models:N:ChatTemplate: the model's own template, none, or a built-in family that overrides it.</summary>
public sealed class ChatTemplateSettingTests
{
    private static HostedModels Host(string? chatTemplate) => new(
        Options.Create(new ProxyOrleansOptions
        {
            Models = [new HostedModelOptions { Name = TinyTrio.Expert, Path = TinyTrio.Dir(TinyTrio.Expert), ChatTemplate = chatTemplate }],
        }),
        new CatalogModelLoader(Options.Create(new ProxyOrleansOptions())), NullLoggerFactory.Instance);

    [Fact]
    public void AFamilyOverridesTheModelsOwnTemplateWhereTheSiloPrefills()
    {
        using (var own = Host(null)) Assert.Equal("jinja", own.Get(TinyTrio.Expert).Tokenizer.ChatTemplate!.Name);
        using (var none = Host("none")) Assert.Null(none.Get(TinyTrio.Expert).Tokenizer.ChatTemplate);

        using var chatml = Host("chatml");
        var worker = chatml.Get(TinyTrio.Expert);
        Assert.Equal(ChatTemplates.ChatMl, worker.Tokenizer.ChatTemplate!.Name);
        var ids = worker.Tokenize(new OpenSessionRequest { SessionId = "s", Messages = [new ChatMessageSpec("user", "hi")], ApplyChatTemplate = true });
        var rendered = new ChatMlChatTemplate().Render([new ChatMessage("user", "hi")]);
        Assert.Equal(worker.Tokenizer.Encode(rendered, addBos: false, parseSpecialTokens: true), ids);
    }

    [Fact]
    public void AnUnknownFamilyFailsTheSiloAtStartNamingTheSetting()
    {
        var e = Assert.Throws<InvalidOperationException>(() => Host("vicuna"));
        Assert.Contains("ProxyOrleans:Models:N:ChatTemplate", e.Message);
        Assert.Contains("vicuna", e.Message);
        Assert.Contains("chatml", e.Message);
    }
}
