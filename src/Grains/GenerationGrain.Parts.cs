using System.Diagnostics;
using ProxyOrleans.Grains.Models;
using ProxyOrleans.Inference.Decoding;
using ProxyOrleans.Inference.Tokenization;

namespace ProxyOrleans.Grains;

// The coordinator's parts: how it reaches each model (slots), how each pair's logits are read from the step's
// results (routes), and its timing figures. The step loop is in GenerationGrain.cs, each step's work in GenerationGrain.Run.cs.
public sealed partial class GenerationGrain
{
    /// <summary>
    /// The decoding state, fresh or resumed from the tokens of an earlier attempt (replayed, so the penalties' counts are
    /// the first attempt's). A bias or stop token id outside the base's vocabulary is the request's fault: a 400 naming it.
    /// </summary>
    private static GenerationState StartState(ITextTokenizer tokenizer, SamplingOptions sampling, int[] resumeTokens, int[] promptIds, int room)
    {
        try
        {
            return resumeTokens.Length == 0
                ? new GenerationState(tokenizer, sampling, promptIds, contextRoom: room)
                : GenerationState.Resume(tokenizer, sampling, new GenerationCheckpoint(sampling.Seed!.Value, resumeTokens), promptIds, contextRoom: room);
        }
        catch (ArgumentException e) when (e.ParamName is "logit_bias" or "stop_token_ids")
        {
            throw new InvalidRequestException(e.ParamName, e.Message);
        }
    }

    // The logits processors name their request field (logit_bias, min_p...); the other checks are about "sampling".
    private static string SamplingField(ArgumentException e) => e.ParamName is { } p && p.Contains('_') ? p : "sampling";

    /// <summary>One model (or pair) of the combination as the coordinator reaches it.</summary>
    private abstract class Slot
    {
        public string Label = "";
        /// <summary>Hosted on the coordinator's silo: its logits do not cross the wire.</summary>
        public bool Local;
        public abstract Task<StepResult> Open(int[] generated);
        public abstract Task<StepResult> Step(int step, int token);
        public abstract Task CloseQuietly();
        /// <summary>Switch replica after a drain refusal.</summary>
        public abstract void NextReplica();
    }

    // Slots hold the grain factory, not the grain: Polly runs retries off the activation's scheduler, where
    // Grain.GrainFactory may not be touched.
    private sealed class ModelSlot(IGrainFactory grains, string model, int replica, OpenSessionRequest open) : Slot
    {
        private IModelGrain Grain => grains.GetGrain<IModelGrain>($"{model}#{replica}");
        // A re-open after failover prefills the tokens so far and scores nothing: the prompt was scored at the first open.
        public override Task<StepResult> Open(int[] generated) => Grain.Open(open with { Generated = generated, ScorePrompt = open.ScorePrompt && generated.Length == 0 });
        public override Task<StepResult> Step(int step, int token) => Grain.Step(open.SessionId, step, token);
        public override async Task CloseQuietly() { try { await Grain.Close(open.SessionId); } catch { } }
        public override void NextReplica() => replica++;
    }

    private sealed class PairSlot(IGrainFactory grains, string key, int replica, OpenSessionRequest expert, OpenSessionRequest anti) : Slot
    {
        private IModelPairGrain Grain => grains.GetGrain<IModelPairGrain>($"{key}#{replica}");
        public override Task<StepResult> Open(int[] generated) => Grain.Open(
            expert with { Generated = generated, ScorePrompt = expert.ScorePrompt && generated.Length == 0 },
            anti with { Generated = generated, ScorePrompt = anti.ScorePrompt && generated.Length == 0 });
        public override Task<StepResult> Step(int step, int token) => Grain.Step(expert.SessionId, step, token);
        public override async Task CloseQuietly() { try { await Grain.Close(expert.SessionId); } catch { } }
        public override void NextReplica() => replica++;
    }


    /// <summary>How one pair's logits reach the coordinator, read from the step's results in slot order.</summary>
    private abstract record PairRoute
    {
        public abstract PairLogits Read(ReadOnlyMemory<float>[] logits);
    }

    /// <summary>A pair grain (expert and anti-expert on one silo) sent w·(expert − antiExpert).</summary>
    private sealed record CoHostedPair(int Slot) : PairRoute
    {
        public override PairLogits Read(ReadOnlyMemory<float>[] logits) => PairLogits.Difference(logits[Slot]);
    }

    /// <summary>The expert and the anti-expert answered separately; the coordinator takes the difference.</summary>
    private sealed record SeparatePair(int Expert, int AntiExpert) : PairRoute
    {
        public override PairLogits Read(ReadOnlyMemory<float>[] logits) => PairLogits.Of(logits[Expert], logits[AntiExpert]);
    }

    /// <summary>The coordinator's timing and traffic figures, reported in <see cref="GenerationStats"/>.</summary>
    private sealed class Figures
    {
        public double PrefillMs;
        public int Failovers;
        private double _modelMs, _serverMs;
        private long _bytes, _stepTicks, _fanOutTicks, _streamTicks, _decodeTicks;
        private int _steps;

        public double MeanStepMs => _steps == 0 ? 0 : Ms(_stepTicks) / _steps;

        public void Decoded(long since) => _decodeTicks += Stopwatch.GetTimestamp() - since;
        public void Streamed(long since) => _streamTicks += Stopwatch.GetTimestamp() - since;

        /// <summary>A step's results arrived: the step ran from <paramref name="stepStart"/>, its calls from <paramref name="fanOutStart"/>.</summary>
        public void Stepped(long stepStart, long fanOutStart, StepResult[] results, IReadOnlyList<Slot> slots)
        {
            long now = Stopwatch.GetTimestamp();
            _fanOutTicks += now - fanOutStart;
            _stepTicks += now - stepStart;
            _modelMs += results.Max(r => r.ModelMs);
            _serverMs += results.Max(r => r.ServerMs);
            for (int i = 0; i < results.Length; i++) if (!slots[i].Local) _bytes += results[i].Logits.Value.Length;
            _steps++;
        }

        /// <param name="step">Its combine and sample times (the combine includes turning the wire bytes into floats).</param>
        public GenerationStats ToStats(ProxyStep? step, string silo, string layout)
        {
            double PerStep(double total) => _steps == 0 ? 0 : total / _steps;
            int combines = Math.Max(1, step?.Combines ?? 0);
            return new GenerationStats
            {
                Steps = _steps, PrefillMs = PrefillMs, StepMs = MeanStepMs, ModelMs = PerStep(_modelMs), FanOutMs = PerStep(Ms(_fanOutTicks)),
                CombineMs = _steps == 0 ? 0 : Ms(_decodeTicks + (step?.CombineTicks ?? 0)) / combines, SampleMs = Ms(step?.SampleTicks ?? 0) / combines,
                BytesPerStep = PerStep(_bytes), Failovers = Failovers, StreamMs = PerStep(Ms(_streamTicks)), ServerMs = PerStep(_serverMs),
                CoordinatorSilo = silo, Layout = layout,
            };
        }

        private static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
    }
}
