using System.Diagnostics;
using ProxyOrleans.Training.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ProxyOrleans.Training;

/// <summary>Hyper-parameters of one training phase (nanoGPT names).</summary>
public sealed record TrainOptions
{
    public int Steps { get; init; } = 100;
    public int BatchSize { get; init; } = 16;
    public int SeqLen { get; init; } = 128;
    public double LearningRate { get; init; } = 3e-3;
    public double MinLearningRate { get; init; } = 3e-4;
    public int WarmupSteps { get; init; } = 20;
    public double WeightDecay { get; init; } = 0.1;
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.95;
    public double GradClip { get; init; } = 1.0;
    public int Seed { get; init; } = 1337;
    public int LogEvery { get; init; } = 25;
    /// <summary>Validation every this many steps (0: no validation); the best weights seen are kept.</summary>
    public int EvalEvery { get; init; }
    /// <summary>Stop after this many validations without a better loss (early stopping).</summary>
    public int Patience { get; init; } = 2;
}

/// <summary>Per-phase outcome, for the docs' timing table.</summary>
public sealed record TrainReport(string Name, int Steps, long Tokens, double Seconds, float FirstLoss, float FinalLoss)
{
    /// <summary>(step, validation loss) at every validation; empty without validation.</summary>
    public IReadOnlyList<(int Step, float Loss)> Validation { get; init; } = [];
    /// <summary>The step whose weights were kept (the best validation loss), or the last step.</summary>
    public int KeptStep { get; init; }
}

/// <summary>
/// A nanoGPT-style loop: AdamW (no decay on norms), linear warmup then cosine decay, gradient clipping,
/// seeded batches, a progress line every few steps (step, loss, lr, tokens/s, ETA).
/// </summary>
public static class Trainer
{
    public static TrainReport Train(string name, nn.Module<Tensor, Tensor> model, IBatchSource data, TrainOptions o,
        TextWriter? log = null, Action<int, float>? onStep = null, Func<float>? validate = null)
    {
        log ??= Console.Out;
        model.train();
        var decay = new List<Parameter>();
        var noDecay = new List<Parameter>();
        foreach (var (pname, p) in model.named_parameters())
            (p.dim() >= 2 ? decay : noDecay).Add(p);
        var optimizer = optim.AdamW(
        [
            new AdamW.ParamGroup(decay, new AdamW.Options { weight_decay = o.WeightDecay }),
            new AdamW.ParamGroup(noDecay, new AdamW.Options { weight_decay = 0 }),
        ], o.LearningRate, o.Beta1, o.Beta2, 1e-8, 0);

        var inputs = new long[o.BatchSize * o.SeqLen];
        var labels = new long[o.BatchSize * o.SeqLen];
        long tokens = 0;
        float first = float.NaN, last = float.NaN, smoothed = float.NaN;
        var clock = Stopwatch.StartNew();
        var validation = new List<(int Step, float Loss)>();
        Dictionary<string, Tensor>? best = null;
        float bestLoss = float.PositiveInfinity;
        int keptStep = o.Steps, sinceBest = 0, steps = o.Steps;
        bool Validate(int done)
        {
            model.eval();
            float loss = validate!();
            model.train();
            validation.Add((done, loss));
            log.WriteLine($"[{name}] step {done,5}/{o.Steps}  validation loss {loss:F4}{(loss < bestLoss ? " (best)" : "")}");
            if (loss < bestLoss)
            {
                bestLoss = loss; keptStep = done; sinceBest = 0;
                if (best is not null) foreach (var t in best.Values) t.Dispose();
                best = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone().DetachFromDisposeScope());
                return false;
            }
            return ++sinceBest >= o.Patience;
        }
        if (validate is not null && o.EvalEvery > 0) Validate(0);
        log.WriteLine($"[{name}] {o.Steps} steps x {o.BatchSize}x{o.SeqLen} tokens, lr {o.LearningRate:G3}->{o.MinLearningRate:G3}, data {data.Describe()}, params {model.parameters().Sum(p => p.numel()):N0}");
        for (int step = 0; step < o.Steps; step++)
        {
            double lr = LearningRate(step, o);
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
            data.Fill(step, o.BatchSize, o.SeqLen, inputs, labels);
            using (NewDisposeScope())
            {
                var x = tensor(inputs, [o.BatchSize, o.SeqLen]);
                var y = tensor(labels, [o.BatchSize * o.SeqLen]);
                var logits = model.forward(x);
                var loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), y, ignore_index: -100);
                optimizer.zero_grad();
                loss.backward();
                nn.utils.clip_grad_norm_(model.parameters(), o.GradClip);
                optimizer.step();
                last = loss.item<float>();
            }
            if (float.IsNaN(first)) first = last;
            smoothed = float.IsNaN(smoothed) ? last : 0.9f * smoothed + 0.1f * last;
            tokens += inputs.Length;
            onStep?.Invoke(step, last);
            if (step % o.LogEvery == 0 || step == o.Steps - 1)
            {
                double secs = clock.Elapsed.TotalSeconds;
                double eta = secs / (step + 1) * (o.Steps - step - 1);
                log.WriteLine($"[{name}] step {step + 1,5}/{o.Steps}  loss {last:F4} (avg {smoothed:F4})  lr {lr:E2}  {tokens / secs,8:F0} tok/s  elapsed {secs,6:F0}s  ETA {eta,5:F0}s");
            }
            if (validate is not null && o.EvalEvery > 0 && ((step + 1) % o.EvalEvery == 0 || step == o.Steps - 1) && Validate(step + 1))
            {
                steps = step + 1;
                log.WriteLine($"[{name}] early stop at step {steps}: no better validation loss in {o.Patience} checks");
                break;
            }
        }
        if (best is not null)
        {
            using (no_grad())
                foreach (var (key, value) in model.state_dict()) value.copy_(best[key]);
            foreach (var t in best.Values) t.Dispose();
            log.WriteLine($"[{name}] kept the weights of step {keptStep} (validation loss {bestLoss:F4})");
        }
        model.eval();
        return new TrainReport(name, steps, tokens, clock.Elapsed.TotalSeconds, first, smoothed) { Validation = validation, KeptStep = best is null ? steps : keptStep };
    }

    /// <summary>Linear warmup to the peak, then cosine decay to the minimum (nanoGPT's get_lr).</summary>
    public static double LearningRate(int step, TrainOptions o)
    {
        if (step < o.WarmupSteps) return o.LearningRate * (step + 1) / o.WarmupSteps;
        double ratio = (double)(step - o.WarmupSteps) / Math.Max(1, o.Steps - o.WarmupSteps);
        double coeff = 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1, ratio)));
        return o.MinLearningRate + coeff * (o.LearningRate - o.MinLearningRate);
    }
}
