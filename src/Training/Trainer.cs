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
}

/// <summary>Per-phase outcome, for the docs' timing table.</summary>
public sealed record TrainReport(string Name, int Steps, long Tokens, double Seconds, float FirstLoss, float FinalLoss);

/// <summary>
/// A nanoGPT-style loop: AdamW (no decay on norms), linear warmup then cosine decay, gradient clipping,
/// seeded batches, a progress line every few steps (step, loss, lr, tokens/s, ETA).
/// </summary>
public static class Trainer
{
    public static TrainReport Train(string name, nn.Module<Tensor, Tensor> model, IBatchSource data, TrainOptions o,
        TextWriter? log = null, Action<int, float>? onStep = null)
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
        }
        model.eval();
        return new TrainReport(name, o.Steps, tokens, clock.Elapsed.TotalSeconds, first, smoothed);
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
