using ProxyOrleans.Abstractions;
using ProxyOrleans.Client.Commands;
using Xunit;

namespace ProxyOrleans.Cluster.Tests;

/// <summary>`proxyorleans generate --answer-cue --expert-response-prefix`: how the options land on the combination.</summary>
public class GenerateCommandTests
{
    private static readonly CombinationSpec Configured =
        new("base", [new ExpertSpec("expert", "anti")], 1f, "Question: {prompt}\nAnswer:", "Answer:");

    [Fact]
    public void Options_override_the_combinations_defaults_and_a_literal_backslash_n_is_a_newline()
    {
        var spec = GenerateCommand.WithPromptOptions(Configured, @"Q: {prompt}\nA:", "");
        Assert.Equal("Q: {prompt}\nA:", spec.AnswerCue);
        Assert.Equal("", spec.ExpertResponsePrefix);
    }

    [Fact]
    public void Without_options_the_defaults_stay()
    {
        Assert.Equal(Configured, GenerateCommand.WithPromptOptions(Configured, null, null));
    }

    [Fact]
    public void A_cue_without_the_placeholder_is_refused_naming_the_option()
    {
        var e = Assert.Throws<ArgumentException>(() => GenerateCommand.WithPromptOptions(Configured, "Question: Answer:", null));
        Assert.StartsWith("--answer-cue:", e.Message);
        Assert.Contains("{prompt}", e.Message);
    }
}
