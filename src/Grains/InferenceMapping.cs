using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Grains;

/// <summary>
/// The one place where the wire request (Abstractions) becomes the Inference library's types, as vLLM's
/// request converts itself with <c>to_sampling_params()</c>. The gateway's parser and the CLI build the wire
/// records; the coordinator and the model grains read them only through here.
/// </summary>
public static class InferenceMapping
{
    /// <summary>Sampling and stopping as <see cref="GenerationState"/> applies them (not validated here).</summary>
    public static SamplingOptions ToSamplingOptions(this SamplingSpec s) => new()
    {
        Temperature = s.Temperature, TopK = s.TopK, TopP = s.TopP, Seed = s.Seed, MaxNewTokens = s.MaxNewTokens,
        Stop = s.Stop ?? [], StopAtEos = s.StopAtEos,
        LogitBias = s.LogitBias is { Count: > 0 } bias ? bias : LogitsProcessors.NoBias, RepetitionPenalty = s.RepetitionPenalty,
        FrequencyPenalty = s.FrequencyPenalty, PresencePenalty = s.PresencePenalty, MinP = s.MinP, StopTokenIds = s.StopTokenIds ?? [],
    };

    /// <summary>The single-process decoder's view of a combination (names, weights, alpha).</summary>
    public static ProxyCombination ToCombination(this CombinationSpec c) =>
        new(c.Base, [.. c.Experts.Select(e => new ExpertPair(e.Expert, e.AntiExpert, e.Weight))], c.Alpha);

    /// <summary>
    /// The prompt as one model of a session sees it, with the combination's answer cue and response prefix:
    /// <see cref="ProxyPrompt.ExpertTokens"/> for an expert (<see cref="OpenSessionRequest.ApplyChatTemplate"/>),
    /// <see cref="ProxyPrompt.PlainTokens"/> otherwise, exactly as the single-process decoder tokenizes.
    /// </summary>
    public static ProxyPrompt ToProxyPrompt(this OpenSessionRequest r)
    {
        var prompt = r.Messages is { Length: > 0 } messages
            ? ProxyPrompt.FromMessages([.. messages.Select(m => new ChatMessage(m.Role, m.Content))])
            : r.PromptTokenIds is { } ids ? ProxyPrompt.FromTokenIds(ids)
            : ProxyPrompt.FromText(r.Prompt ?? throw new InvalidRequestException("prompt", "Give a prompt, prompt token ids or chat messages."));
        return prompt with
        {
            ExpertChatTemplate = r.ApplyChatTemplate, AnswerCue = r.AnswerCue, ExpertResponsePrefix = r.ExpertResponsePrefix,
        };
    }

    /// <summary>
    /// A request that scores its prompt (<see cref="GenerationRequest.PromptLogprobs"/>): every model reads the prompt as
    /// sent, as <see cref="ProxyPrompt.AsSent"/> has the single-process decoder do. Other requests are returned as they are.
    /// </summary>
    public static GenerationRequest WithPromptScoredAsSent(this GenerationRequest r) => r.PromptLogprobs is null ? r : r with
    {
        ExpertChatTemplate = false,
        Combination = r.Combination with { AnswerCue = null, ExpertResponsePrefix = null, BaseChatTemplate = false },
    };

    /// <summary>The Inference library's log-probabilities on the wire, each token's text decoded alone (special tokens kept).</summary>
    public static TokenLogprobsSpec ToSpec(this TokenLogprobs l, ITextTokenizer tokenizer)
    {
        LogprobSpec Spec(int id, float logprob) => new(id, tokenizer.Decode([id], skipSpecialTokens: false), logprob);
        return new(Spec(l.TokenId, l.Logprob), [.. l.Top.Select(c => Spec(c.TokenId, c.Logprob))]);
    }

    /// <summary>The same prompt as the coordinator hands it to every model of a request.</summary>
    public static ProxyPrompt ToProxyPrompt(this GenerationRequest r) => new OpenSessionRequest
    {
        SessionId = "", Prompt = r.Prompt, Messages = r.Messages, PromptTokenIds = r.PromptTokenIds, ApplyChatTemplate = r.ExpertChatTemplate,
        AnswerCue = r.Combination.AnswerCue, ExpertResponsePrefix = r.Combination.ExpertResponsePrefix,
    }.ToProxyPrompt() with { BaseChatTemplate = r.Combination.BaseChatTemplate };
}
