using ProxyOrleans.Grains.Models;
using ProxyOrleans.Inference.Decoding;

namespace ProxyOrleans.Grains;

// The coordinator's scores: log-probabilities (the scored prompt of echo, each step's token) and the per-model top
// tokens of the analysis. The step loop is in GenerationGrain.cs, each step's work in GenerationGrain.Run.cs.
public sealed partial class GenerationGrain
{
    private sealed partial class Run
    {
        /// <summary>Prompt scoring (echo) happens at the first open of a generation; a resumed attempt's caller has the scores already.</summary>
        private bool ScoresPrompt => request.PromptLogprobs is not null && request.ResumeTokens.Length == 0;

        /// <summary>
        /// The prompt's log-probabilities from every slot's logits at every prompt position, combined per position by the
        /// step's arithmetic and scored by <see cref="TokenLogprobs.ScorePrompt"/>, as the single-process decoder does.
        /// </summary>
        private TokenLogprobsSpec[] ScorePrompt(StepResult[] opened, int[] promptIds)
        {
            if (opened.Any(o => o.PromptTokens != promptIds.Length || o.PromptIds is { } ids && !ids.AsSpan().SequenceEqual(promptIds)))
                throw new InvalidRequestException("prompt", "Scoring the prompt needs every model to read it as the same tokens, but a model of the " +
                                                            "combination tokenizes it differently from the base: use models that share the base's tokenizer.");
            int rows = promptIds.Length - 1;
            var perSlot = Array.ConvertAll(opened, o => (ReadOnlyMemory<float>)LogitsCodec.Decode(o.PromptLogits?.Value ?? [], o.Precision));
            var at = new ReadOnlyMemory<float>[perSlot.Length];
            var pairs = new PairLogits[_pairs.Count];
            var scorer = new ProxyStep(request.Combination.Alpha, [.. request.Combination.Experts.Select(e => e.Weight)]);
            var scored = TokenLogprobs.ScorePrompt(promptIds, t =>
            {
                for (int i = 0; i < perSlot.Length; i++)
                {
                    int width = perSlot[i].Length / rows;
                    at[i] = perSlot[i].Slice(t * width, width);
                }
                for (int i = 0; i < pairs.Length; i++) pairs[i] = _pairs[i].Read(at);
                return scorer.Combine(at[0].Span, pairs);
            }, _tokenizer!.VocabSize, request.PromptLogprobs!.Value);
            var first = TokenLogprobsSpec.Unscored(promptIds[0], _tokenizer.Decode([promptIds[0]], skipSpecialTokens: false));
            return [first, .. scored.Skip(1).Select(s => s!.ToSpec(_tokenizer))];
        }

        /// <summary>The only event of a run that generates nothing (max_tokens 0): the scored prompt and the usage.</summary>
        public TokenEvent ScoredOnly() => new()
        {
            Step = 0, TokenId = -1, Text = "", Finish = FinishKind.Length, Seed = State!.Seed, Usage = Usage(), Stats = Stats(),
            PromptLogprobs = TakePromptLogprobs(),
        };

        private TokenLogprobsSpec[]? TakePromptLogprobs()
        {
            var scored = _promptLogprobs;
            _promptLogprobs = null;
            return scored;
        }

        private Dictionary<string, TopToken[]> TopTokens(ReadOnlyMemory<float>[] logits)
        {
            TopToken[] Top(ReadOnlySpan<float> l) => [.. StepAnalysis.TopTokens(l, request.TopTokens)
                .Select(t => new TopToken(t.Id, _tokenizer!.Decode([t.Id], skipSpecialTokens: false), t.Logit) { Probability = (float)t.Probability, Logprob = (float)t.Logprob })];
            var d = new Dictionary<string, TopToken[]> { ["combined"] = Top(_step!.Combined) };
            for (int i = 0; i < Slots.Count; i++) d[Slots[i].Label] = Top(logits[i].Span);
            return d;
        }

        private Dictionary<string, float> ChosenLogprobs(ReadOnlyMemory<float>[] logits, int token)
        {
            // The combination's score of its token as the choice's logprobs give it (padding rows cut off as sampling cuts them).
            var d = new Dictionary<string, float> { ["combined"] = TokenLogprobs.Of(State!.Candidates(_step!.Combined), token, 0).Logprob };
            for (int i = 0; i < Slots.Count; i++) d[Slots[i].Label] = TokenLogprobs.Of(logits[i].Span, token, 0).Logprob;
            return d;
        }

        private Dictionary<string, float> ChosenProbabilities(ReadOnlyMemory<float>[] logits, int token)
        {
            var d = new Dictionary<string, float> { ["combined"] = (float)StepAnalysis.Probability(_step!.Combined, token) };
            for (int i = 0; i < Slots.Count; i++) d[Slots[i].Label] = (float)StepAnalysis.Probability(logits[i].Span, token);
            return d;
        }
    }
}
